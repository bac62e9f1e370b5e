/**
 * Child process (node --expose-gc): the extraction job itself
 * (src/pipeline/job.ts consumeJobs, with the D1 retry wrapper the Worker puts
 * around it) over a whole run of a large dataset, one job message after the
 * other as the jobs queue would deliver them: each job sends at most
 * JOB_MAX_CHUNKS chunk messages and queues the next, until none is queued.
 *
 * Node seams, nothing else: archives read from DATA_DIR as fetch Responses,
 * D1 as Node's SQLite with the migrations (bench/lib/sqlite-d1.ts), MD5 by
 * node:crypto behind the runtime's DigestStream, and queues that keep what
 * they are sent (chunk messages serialized as the runtime does, V8's
 * serializer, then dropped). Between two jobs the ledger gets a row per chunk
 * sent, as the chunk consumers would have committed them, so that each job
 * reads the ledger it would meet.
 *
 * Per job (a segment): chunk messages sent, sendBatch calls, fetches, D1
 * calls made through the binding (by what they are for), queue sends, CPU
 * seconds (process.cpuUsage: every thread, GC included) and the peak of V8's
 * heap + external memory (garbage included; sampled every few ms and at each
 * sendBatch). Prints one JSON line.
 *
 *   node --expose-gc bench/out/scale-job.mjs DATA_DIR DATASET VARS_JSON   (bundled by bench/lib/child.ts)
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { serialize } from "node:v8";
import { retryingD1 } from "../src/db/d1-retry";
import { createRun } from "../src/db/run-start";
import { database } from "../src/db/database";
import { getRun } from "../src/db/run-reads";
import { readConfig } from "../src/pipeline/config";
import type { ChunkMessage, ExtractMessage } from "../src/pipeline/messages";
import { consumeJobs } from "../src/pipeline/job";
import { sqliteD1, type D1Call } from "./lib/sqlite-d1";

const [dir, dataset, varsJson] = process.argv.slice(2);
if (!dir || !dataset) throw new Error("usage: scale-job.ts DATA_DIR DATASET [VARS_JSON]");
const vars = JSON.parse(varsJson ?? "{}") as Record<string, string>;

// The job logs its progress with console.log: stdout is for the result line only.
console.log = (...args: unknown[]) => console.error(...args);

// workersMd5 (codec/digest.ts) hashes through the runtime's DigestStream; Node has createHash.
class DigestStream extends WritableStream<ArrayBufferView | ArrayBuffer> {
  readonly digest: Promise<ArrayBuffer>;
  constructor(algorithm: string) {
    const hash = createHash(algorithm.replace("-", "").toLowerCase());
    let done!: (b: ArrayBuffer) => void;
    const digest = new Promise<ArrayBuffer>((ok) => (done = ok));
    super({
      write: (chunk) => {
        hash.update(chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : (chunk as Uint8Array));
      },
      close: () => {
        const b = hash.digest();
        done(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
      },
    });
    this.digest = digest;
  }
}
(globalThis as unknown as { crypto: { DigestStream: typeof DigestStream } }).crypto.DigestStream = DigestStream;

let fetches = 0;
globalThis.fetch = (async (input: string | URL | Request) => {
  fetches++;
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const path = join(dir, decodeURIComponent(new URL(url).pathname.replace(/^.*\//, "")));
  const size = await stat(path).then(
    (s) => s.size,
    () => undefined,
  );
  if (size === undefined) return new Response("not found", { status: 404 });
  const body = Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>;
  return new Response(body, { headers: { "Content-Length": String(size) } });
}) as typeof fetch;

// ---------------------------------------------------------------- memory

const inUse = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
let peak = 0;
const sample = () => {
  const now = inUse();
  if (now > peak) peak = now;
};

// ---------------------------------------------------------------- bindings

const d1 = sqliteD1();
const sentKeys = new Map<string, number>();
let sentChunks: ChunkMessage[] = [];
let sendBatchCalls = 0;
let maxMessageBytes = 0;
let maxBatchBytes = 0;
let maxBatchMessages = 0;
const CHUNKS = {
  async send(): Promise<void> {
    throw new Error("the job sends chunks with sendBatch only");
  },
  async sendBatch(messages: readonly { body: ChunkMessage }[]): Promise<void> {
    sendBatchCalls++;
    let bytes = 0;
    for (const { body } of messages) {
      const n = serialize(body).length;
      bytes += n;
      maxMessageBytes = Math.max(maxMessageBytes, n);
      const key = `${body.split}:${body.start}`;
      sentKeys.set(key, (sentKeys.get(key) ?? 0) + 1);
      // Kept for the ledger only: split, start, count.
      sentChunks.push({ ...body, labels: new Uint8Array(0), pixels: new Uint8Array(0), staged: undefined });
    }
    maxBatchBytes = Math.max(maxBatchBytes, bytes);
    maxBatchMessages = Math.max(maxBatchMessages, messages.length);
    sample();
  },
};
let queued: ExtractMessage[] = [];
let jobSends = 0;
const JOBS = {
  async send(body: ExtractMessage): Promise<void> {
    jobSends++;
    queued.push(JSON.parse(JSON.stringify(body)) as ExtractMessage);
  },
  async sendBatch(): Promise<void> {
    throw new Error("the job queues its continuation with send");
  },
};

const env = { ...vars, DB: retryingD1(d1.d1), CHUNKS, JOBS } as unknown as Env;
const cfg = readConfig(env);

/** What a D1 call is for, from its SQL (the statements of runs.ts and load.ts). */
function purpose(c: D1Call): "pin" | "heartbeat" | "ledger" | "run" {
  const sql = c.sql.join("\n");
  if (/SET checksums/i.test(sql)) return "pin";
  if (/^update "runs" set "updated_at" = \?/i.test(sql) && /"attempt"/.test(sql)) return "heartbeat";
  if (c.kind === "statement" && /"run_chunks"/.test(sql)) return "ledger";
  return "run";
}

// ---------------------------------------------------------------- the run

const db = database(d1.d1);
const created = await createRun(db, { trigger: "http", dataset, source: "http://bench.invalid/" }, cfg.leaseMs);
if (!created.started) throw new Error("no run started");
const runId = created.run.id;
// As startRun queues it (force: a load whatever the dataset holds).
queued = [{ kind: "extract", runId, attempt: created.run.attempt, force: true, from: 0 }];

interface Segment {
  from: number;
  chunks: number;
  sendBatchCalls: number;
  fetches: number;
  d1: { pin: number; heartbeat: number; ledger: number; run: number; total: number };
  queueSends: number;
  subrequests: number;
  cpuSeconds: number;
  wallSeconds: number;
  peakMb: number;
  /** The peak above what the process held before the job started (settled). */
  peakAboveRestMb: number;
  outcome: "ack" | "retry";
}
const mb = (b: number) => Math.round((b / 1e6) * 10) / 10;
const segments: Segment[] = [];
const started = performance.now();
while (queued.length > 0) {
  if (segments.length > 1_000) throw new Error("more than 1,000 jobs: the segments do not advance");
  const msg = queued.shift()!;
  const calls0 = d1.calls.length;
  const [fetches0, batches0, sends0] = [fetches, sendBatchCalls, jobSends];
  sentChunks = [];
  gc();
  gc();
  const rest = inUse();
  peak = rest;
  const timer = setInterval(sample, 5);
  let outcome: Segment["outcome"] | undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await consumeJobs(
    {
      queue: "idx-etl-jobs",
      messages: [
        {
          id: `job-${segments.length}`,
          timestamp: new Date(),
          body: msg,
          attempts: 1,
          ack: () => void (outcome = "ack"),
          retry: () => void (outcome = "retry"),
        },
      ],
      ackAll: () => void (outcome = "ack"),
      retryAll: () => void (outcome = "retry"),
    } as unknown as MessageBatch<unknown>,
    env,
    cfg,
  );
  const cpu = process.cpuUsage(cpu0);
  const wallSeconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  sample();
  const calls = d1.calls.slice(calls0);
  const byPurpose = { pin: 0, heartbeat: 0, ledger: 0, run: 0 };
  for (const c of calls) byPurpose[purpose(c)]++;
  const seg: Segment = {
    from: msg.from,
    chunks: sentChunks.length,
    sendBatchCalls: sendBatchCalls - batches0,
    fetches: fetches - fetches0,
    d1: { ...byPurpose, total: calls.length },
    queueSends: jobSends - sends0,
    subrequests: 0,
    cpuSeconds: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
    wallSeconds: Math.round(wallSeconds * 100) / 100,
    peakMb: mb(peak),
    peakAboveRestMb: mb(peak - rest),
    outcome: outcome ?? "ack",
  };
  seg.subrequests = seg.fetches + seg.d1.total + seg.sendBatchCalls + seg.queueSends;
  segments.push(seg);
  console.error(
    `segment ${segments.length} from chunk ${seg.from}: ${seg.chunks} chunks, ${seg.subrequests} subrequests, ${seg.cpuSeconds} s CPU, peak ${seg.peakMb} MB`,
  );
  if (seg.outcome !== "ack") throw new Error(`job ${segments.length} asked to be retried: ${JSON.stringify(seg)}`);
  // The chunk consumers commit what this job sent (uncounted: not the job's calls).
  const insert = d1.sqlite.prepare(
    "INSERT INTO run_chunks (run_id, split, start, count, digest) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
  );
  for (const c of sentChunks) insert.run(runId, c.split, c.start, c.count, "0".repeat(32));
}

const run = await getRun(db, runId);
const duplicates = [...sentKeys.values()].filter((n) => n > 1).length;
console.log = console.info;
process.stdout.write(
  JSON.stringify({
    dataset,
    jobMaxChunks: cfg.jobMaxChunks,
    chunkSize: cfg.chunkSize,
    leaseSeconds: cfg.leaseMs / 1000,
    runStatus: run?.status ?? null,
    runError: run?.error ?? null,
    rows: (run?.trainExpected ?? 0) + (run?.testExpected ?? 0),
    chunksTotal: run?.chunksTotal ?? null,
    chunksSent: sentKeys.size,
    duplicates,
    maxMessageBytes,
    maxBatchBytes,
    maxBatchMessages,
    seconds: Math.round(((performance.now() - started) / 1000) * 100) / 100,
    segments,
  }) + "\n",
);
