/**
 * One whole ETL run scheduled as production may schedule it, inside one isolate,
 * for the bench (issue #9). Not part of the product: `npm run bench` and
 * `bench/concurrent/run.ts` run it with its own wrangler config and database.
 *
 * Miniflare's queue broker delivers one batch at a time per queue, whatever
 * max_concurrency says, so `wrangler dev` never shows the isolate holding several
 * chunk-consumer invocations at once. Production may: up to max_concurrency
 * invocations, and they can share an isolate with the extraction job. Here the
 * real queue handler (src/index.ts) runs the job, and the job's CHUNKS binding is
 * a broker in this isolate that keeps up to `concurrency` consumer invocations of
 * the same handler in flight, each with a batch of up to `batch` messages.
 *
 * Batches are full while the job is still sending (`fill=full`, the default):
 * Queues scales a consumer up only while its backlog grows, so concurrent
 * invocations come with full batches, the most memory they can hold at once.
 * `fill=eager` delivers whatever is waiting as soon as a slot is free, as
 * max_batch_timeout = 0 reads; with the job sharing the thread, it seldom gets
 * far enough ahead to fill them.
 *
 * Waiting messages are kept out of the isolate by default (`backlog=kv`: their
 * serialized bodies in a local KV namespace, served by another isolate), because
 * in production they wait in the queue, not in the Worker; the producer runs
 * ahead of the consumers, so a backlog held here would weigh on the measurement
 * with memory production never holds. `backlog=isolate` keeps them here, cloned
 * as sendBatch would serialize them, to show what that would add.
 *
 *   POST /run?source=<archives base URL>&concurrency=N&batch=B
 *            [&retries=R&retryDelay=S&backlog=kv|isolate&fill=full|eager&d1LatencyMs=L]
 *     → RunReport (JSON), once the run is complete or failed and nothing is left to deliver
 */
import worker from "../../src/index";
import { DEFAULT_DATASET } from "../../src/core/registry";
import { QUEUES, readConfig } from "../../src/pipeline/config";
import type { ExtractMessage } from "../../src/pipeline/messages";
import { countImages } from "../../src/db/run-checks";
import { createRun } from "../../src/db/run-start";
import { database } from "../../src/db/database";
import { getRun } from "../../src/db/run-reads";

type BenchEnv = Omit<Env, "JOBS" | "CHUNKS"> & { readonly BACKLOG: KVNamespace };

type QueueHandler = (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => void | Promise<void>;
const handler: QueueHandler = worker.queue.bind(worker);

export interface RunReport {
  readonly runId: string;
  readonly status: string;
  readonly error: string | null;
  /** Rows in `images` once the run was over. */
  readonly rows: number;
  /** Trigger to the last delivery settled, by the isolate's clock (which stands still while JavaScript runs). */
  readonly seconds: number;
  /** The extraction job's invocation alone. */
  readonly jobSeconds: number;
  readonly backlog: Backlog["kind"];
  readonly fill: Fill;
  readonly d1LatencyMs: number;
  readonly concurrency: number;
  readonly batch: number;
  readonly sent: number;
  /** Chunk-consumer invocations. */
  readonly deliveries: number;
  /** Messages they were given, redeliveries included. */
  readonly delivered: number;
  readonly maxInFlight: number;
  /** The most consumer invocations in flight at once while the extraction job was still running. */
  readonly maxInFlightDuringJob: number;
  /** The most messages waiting for a consumer at once. */
  readonly maxWaiting: number;
  readonly retried: number;
  readonly thrown: number;
  readonly deadLettered: number;
  readonly brokerErrors: string[];
}

/** Where waiting messages are kept between sendBatch and their delivery. */
interface Backlog {
  readonly kind: "kv" | "isolate";
  hold(id: string, body: unknown): Promise<unknown>;
  body(held: unknown): Promise<unknown>;
}

/** As sendBatch would serialize them (contentType "v8"): a copy the producer no longer shares. */
const isolateBacklog = (): Backlog => ({
  kind: "isolate",
  hold: async (_id, body) => structuredClone(body),
  body: async (held) => held,
});

/**
 * The body as bytes: its JSON with each Uint8Array replaced by a placeholder,
 * then the arrays' bytes. Decoded, the arrays are views of the one buffer read
 * back, as a deserialized delivery holds them.
 */
function encode(body: unknown): Uint8Array {
  const arrays: Uint8Array[] = [];
  const json = JSON.stringify(body, (_key, value: unknown) =>
    value instanceof Uint8Array ? { $bytes: arrays.push(value) - 1 } : value,
  );
  const header = new TextEncoder().encode(JSON.stringify({ json, lengths: arrays.map((a) => a.length) }));
  const out = new Uint8Array(4 + header.length + arrays.reduce((n, a) => n + a.length, 0));
  new DataView(out.buffer).setUint32(0, header.length);
  out.set(header, 4);
  let at = 4 + header.length;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

function decode(buffer: ArrayBuffer): unknown {
  const headerLength = new DataView(buffer).getUint32(0);
  const { json, lengths } = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength))) as {
    json: string;
    lengths: number[];
  };
  const offsets: number[] = [];
  let at = 4 + headerLength;
  for (const n of lengths) {
    offsets.push(at);
    at += n;
  }
  return JSON.parse(json, (_key, value: unknown) => {
    const i = (value as { $bytes?: unknown } | null)?.$bytes;
    return typeof i === "number" ? new Uint8Array(buffer, offsets[i], lengths[i]) : value;
  });
}

const kvBacklog = (kv: KVNamespace, prefix: string): Backlog => ({
  kind: "kv",
  hold: async (id, body) => {
    const key = `${prefix}/${id}`;
    await kv.put(key, encode(body));
    return key;
  },
  body: async (held) => {
    const buffer = await kv.get(held as string, "arrayBuffer");
    if (buffer === null) throw new Error(`backlog entry ${String(held)} is gone`);
    return decode(buffer);
  },
});

interface Waiting {
  readonly id: string;
  readonly timestamp: Date;
  readonly attempts: number;
  readonly held: unknown;
}

type Fill = "full" | "eager";

type Verdict = { readonly kind: "ack" } | { readonly kind: "retry"; readonly delaySeconds: number | undefined };

interface BrokerOptions {
  readonly queue: string;
  readonly concurrency: number;
  readonly batch: number;
  /** Redeliveries before a message goes to the dead-letter consumer, as wrangler.toml's max_retries. */
  readonly maxRetries: number;
  /** Seconds before an undecided message of a thrown invocation comes back, as wrangler.toml's retry_delay. */
  readonly retryDelaySeconds: number;
  readonly backlog: Backlog;
  readonly fill: Fill;
  readonly deliver: (batch: MessageBatch<unknown>) => Promise<void>;
  readonly deadLetter: (message: Message<unknown>) => Promise<void>;
}

class Broker {
  sent = 0;
  deliveries = 0;
  delivered = 0;
  inFlight = 0;
  maxInFlight = 0;
  maxInFlightDuringJob = 0;
  maxWaiting = 0;
  retried = 0;
  thrown = 0;
  deadLettered = 0;
  private jobRunning = false;
  readonly brokerErrors: string[] = [];

  private readonly waiting: Waiting[] = [];
  /** Delayed redeliveries and dead letters not yet done. */
  private outstanding = 0;
  private nextId = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: BrokerOptions) {}

  /** The producer binding the extraction job gets as CHUNKS. */
  producer(): Queue {
    const metrics = () => ({ backlogCount: this.waiting.length, backlogBytes: 0 });
    const enqueue = async (bodies: unknown[], delaySeconds: number | undefined) => {
      const held = await Promise.all(
        bodies.map(async (body) => {
          const id = String(++this.nextId);
          return { id, timestamp: new Date(), attempts: 1, held: await this.opts.backlog.hold(id, body) };
        }),
      );
      this.sent += held.length;
      for (const w of held) this.enqueue(w, delaySeconds);
    };
    return {
      metrics: async () => metrics(),
      send: async (body, options) => {
        await enqueue([body], options?.delaySeconds);
        return { metadata: { metrics: metrics() } };
      },
      sendBatch: async (messages, options) => {
        const list = [...messages];
        if (list.some((m) => m.delaySeconds !== undefined)) throw new Error("per-message delays are not simulated");
        await enqueue(
          list.map((m) => m.body),
          options?.delaySeconds,
        );
        return { metadata: { metrics: metrics() } };
      },
    };
  }

  /** While the job runs, `fill=full` holds partial batches back: more is coming. */
  setJobRunning(running: boolean): void {
    this.jobRunning = running;
    this.pump();
  }

  /** Resolves once nothing waits, is delayed or is in flight. */
  idle(): Promise<void> {
    return this.isIdle() ? Promise.resolve() : new Promise((ok) => this.idleWaiters.push(ok));
  }

  private isIdle(): boolean {
    return this.waiting.length === 0 && this.inFlight === 0 && this.outstanding === 0;
  }

  private checkIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const ok of waiters) ok();
  }

  private enqueue(w: Waiting, delaySeconds: number | undefined): void {
    if (delaySeconds) {
      this.outstanding++;
      setTimeout(() => {
        this.outstanding--;
        this.enqueue(w, undefined);
      }, delaySeconds * 1000);
      return;
    }
    this.waiting.push(w);
    this.maxWaiting = Math.max(this.maxWaiting, this.waiting.length);
    this.pump();
  }

  private pump(): void {
    const ready = () =>
      this.opts.fill === "eager" || !this.jobRunning ? this.waiting.length > 0 : this.waiting.length >= this.opts.batch;
    while (this.inFlight < this.opts.concurrency && ready()) {
      const taken = this.waiting.splice(0, this.opts.batch);
      this.inFlight++;
      this.deliveries++;
      this.delivered += taken.length;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      if (this.jobRunning) this.maxInFlightDuringJob = Math.max(this.maxInFlightDuringJob, this.inFlight);
      void this.invoke(taken).finally(() => {
        this.inFlight--;
        this.pump();
        this.checkIdle();
      });
    }
  }

  private async invoke(taken: Waiting[]): Promise<void> {
    const verdicts = new Map<string, Verdict>();
    // The first decision about a message stands, as in Queues.
    const decide = (id: string, v: Verdict) => {
      if (!verdicts.has(id)) verdicts.set(id, v);
    };
    try {
      const bodies = await Promise.all(taken.map((w) => this.opts.backlog.body(w.held)));
      const messages: Message<unknown>[] = taken.map((w, i) => ({
        id: w.id,
        timestamp: w.timestamp,
        body: bodies[i],
        attempts: w.attempts,
        ack: () => decide(w.id, { kind: "ack" }),
        retry: (o?: QueueRetryOptions) => decide(w.id, { kind: "retry", delaySeconds: o?.delaySeconds }),
      }));
      const batch: MessageBatch<unknown> = {
        queue: this.opts.queue,
        messages,
        metadata: { metrics: { backlogCount: this.waiting.length, backlogBytes: 0 } },
        ackAll: () => taken.forEach((w) => decide(w.id, { kind: "ack" })),
        retryAll: (o?: QueueRetryOptions) =>
          taken.forEach((w) => decide(w.id, { kind: "retry", delaySeconds: o?.delaySeconds })),
      };
      await this.opts.deliver(batch);
      // Returning acknowledges whatever the handler left undecided.
      for (const w of taken) decide(w.id, { kind: "ack" });
    } catch (err) {
      this.thrown++;
      console.error(`${this.opts.queue}: invocation threw: ${err instanceof Error ? err.message : String(err)}`);
      for (const w of taken) decide(w.id, { kind: "retry", delaySeconds: this.opts.retryDelaySeconds });
    }
    for (const w of taken) {
      const v = verdicts.get(w.id)!;
      if (v.kind === "ack") continue;
      if (w.attempts > this.opts.maxRetries) {
        void this.toDeadLetter(w);
        continue;
      }
      this.retried++;
      this.enqueue({ ...w, attempts: w.attempts + 1 }, v.delaySeconds ?? this.opts.retryDelaySeconds);
    }
  }

  private async toDeadLetter(w: Waiting): Promise<void> {
    this.deadLettered++;
    this.outstanding++;
    console.error(`${this.opts.queue}: message ${w.id} failed ${w.attempts} deliveries; dead-lettering it`);
    try {
      const body = await this.opts.backlog.body(w.held);
      const noop = () => {};
      await this.opts.deadLetter({ ...w, body, ack: noop, retry: noop });
    } catch (err) {
      this.brokerErrors.push(`dead letter ${w.id}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.outstanding--;
      this.checkIdle();
    }
  }
}

/**
 * Local D1 answers a batch far sooner than Cloudflare's, so consumer invocations
 * here seldom overlap. Holding each batch back for `latencyMs` before it is sent
 * keeps an invocation alive, with its statements, as long as a remote round
 * trip would, and leaves the thread to the job and the other invocations meanwhile.
 */
function slowD1(db: D1Database, latencyMs: number): D1Database {
  if (latencyMs === 0) return db;
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "batch")
        return async <T = unknown>(statements: D1PreparedStatement[]) => {
          await new Promise((ok) => setTimeout(ok, latencyMs));
          return target.batch<T>(statements);
        };
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const param = (url: URL, name: string, fallback?: number): number => {
  const raw = url.searchParams.get(name);
  const n = raw === null ? fallback : Number(raw);
  if (n === undefined || !Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  return n;
};

/** The chunk binding until the broker replaces it: never used. */
const noJobs: Queue = {
  metrics: () => Promise.reject(new Error("no queue binding here: the concurrency bench delivers by hand")),
  send: () => Promise.reject(new Error("no queue binding here: the concurrency bench delivers by hand")),
  sendBatch: () => Promise.reject(new Error("no queue binding here: the concurrency bench delivers by hand")),
};

/**
 * The jobs binding: a job that reaches JOB_MAX_CHUNKS queues the next segment
 * of the run here, and the runner delivers it once the job before it is done,
 * as the jobs queue (max_concurrency = 1) would.
 */
function jobQueue(waiting: unknown[]): Queue {
  const refuse = () => Promise.reject(new Error("the jobs queue here takes one message at a time"));
  return {
    metrics: refuse,
    send: async (body: unknown) => {
      // Serialized as a JSON message would be.
      waiting.push(JSON.parse(JSON.stringify(body)));
    },
    sendBatch: refuse,
  } as unknown as Queue;
}

/** A batch of one message that the handler must settle; it throws if the handler asked for a retry. */
async function deliverOnce(queue: string, body: unknown, env: Env, ctx: ExecutionContext): Promise<void> {
  let verdict: "ack" | "retry" | undefined;
  const decide = (v: "ack" | "retry") => (verdict ??= v);
  const message: Message<unknown> = {
    id: crypto.randomUUID(),
    timestamp: new Date(),
    body,
    attempts: 1,
    ack: () => decide("ack"),
    retry: () => decide("retry"),
  };
  await handler(
    {
      queue,
      messages: [message],
      metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } },
      ackAll: () => decide("ack"),
      retryAll: () => decide("retry"),
    },
    env,
    ctx,
  );
  if (verdict === "retry") throw new Error(`${queue}: the handler asked to retry its message`);
}

async function run(url: URL, raw: BenchEnv, ctx: ExecutionContext): Promise<RunReport> {
  const source = url.searchParams.get("source");
  if (!source) throw new Error("source is required");
  const concurrency = param(url, "concurrency");
  const batch = param(url, "batch");
  if (concurrency < 1 || batch < 1) throw new Error("concurrency and batch must be at least 1");
  const kind = url.searchParams.get("backlog") ?? "kv";
  if (kind !== "kv" && kind !== "isolate") throw new Error("backlog must be kv or isolate");
  const fill = url.searchParams.get("fill") ?? "full";
  if (fill !== "full" && fill !== "eager") throw new Error("fill must be full or eager");

  const latencyMs = param(url, "d1LatencyMs", 0);
  const jobs: unknown[] = [];
  const base: Env = { ...raw, DB: slowD1(raw.DB, latencyMs), JOBS: jobQueue(jobs), CHUNKS: noJobs };
  const cfg = readConfig(base);
  const db = database(raw.DB);
  const started = Date.now();
  const created = await createRun(db, { trigger: "http", dataset: DEFAULT_DATASET, source }, cfg.leaseMs);
  if (!created.started) throw new Error(`run ${created.active.id} is still ${created.active.status}`);
  const runId = created.run.id;

  let env: Env;
  const broker = new Broker({
    queue: QUEUES.chunks,
    concurrency,
    batch,
    maxRetries: param(url, "retries", 5),
    retryDelaySeconds: param(url, "retryDelay", 2),
    backlog: kind === "kv" ? kvBacklog(raw.BACKLOG, runId) : isolateBacklog(),
    fill,
    deliver: async (b) => {
      await handler(b, env, ctx);
    },
    deadLetter: (m) => deliverOnce(QUEUES.deadLetter, m.body, env, ctx),
  });
  env = { ...base, CHUNKS: broker.producer() };

  // As startRun queues it: JSON, force as the bench's runs ask.
  const job: ExtractMessage = { kind: "extract", runId, attempt: created.run.attempt, force: true, from: 0 };
  jobs.push(JSON.parse(JSON.stringify(job)));
  broker.setJobRunning(true);
  const jobStarted = Date.now();
  try {
    for (let body = jobs.shift(); body !== undefined; body = jobs.shift())
      await deliverOnce(QUEUES.jobs, body, env, ctx);
  } finally {
    broker.setJobRunning(false);
  }
  const jobSeconds = (Date.now() - jobStarted) / 1000;
  await broker.idle();
  const seconds = (Date.now() - started) / 1000;

  const after = await getRun(db, runId);
  const counts = await countImages(db, DEFAULT_DATASET);
  return {
    runId,
    status: after?.status ?? "unknown",
    error: after?.error ?? null,
    rows: counts.train + counts.test,
    seconds,
    jobSeconds,
    backlog: kind,
    fill,
    d1LatencyMs: latencyMs,
    concurrency,
    batch,
    sent: broker.sent,
    deliveries: broker.deliveries,
    delivered: broker.delivered,
    maxInFlight: broker.maxInFlight,
    maxInFlightDuringJob: broker.maxInFlightDuringJob,
    maxWaiting: broker.maxWaiting,
    retried: broker.retried,
    thrown: broker.thrown,
    deadLettered: broker.deadLettered,
    brokerErrors: broker.brokerErrors,
  };
}

export default {
  async fetch(request: Request, env: BenchEnv, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/ready") return new Response("ok");
    // For live-memory samples: workerd started with V8's --expose-gc (bench/lib/concurrent.ts).
    if (url.pathname === "/gc" && request.method === "POST") {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) return new Response("gc is not exposed: start workerd with --expose-gc", { status: 501 });
      gc();
      return new Response("ok");
    }
    if (request.method !== "POST" || url.pathname !== "/run") return new Response("not found", { status: 404 });
    try {
      return Response.json(await run(url, env, ctx));
    } catch (err) {
      const chain: string[] = [];
      for (let e: unknown = err; e !== undefined && chain.length < 4; e = e instanceof Error ? e.cause : undefined)
        chain.push(e instanceof Error ? (e.stack ?? e.message) : String(e));
      return Response.json({ error: chain.join("\ncaused by: ") }, { status: 500 });
    }
  },
};
