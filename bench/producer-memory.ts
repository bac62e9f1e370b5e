/**
 * Child process (node --expose-gc): the producer path — download stream → MD5 →
 * gunzip with CRC check → IDX validation (labels, then the images' headers) →
 * chunk messages → sendBatch — as src/pipeline/archive.ts and job.ts run it
 * for a dataset small enough for one job (no JOB_MAX_CHUNKS segments), with Node seams: archives read from
 * disk as a fetch Response, node:crypto MD5, and a queue that serializes each
 * batch as the runtime does (V8's serializer, the v8 content type) and drops it.
 * Prints one JSON line.
 *
 *   node --expose-gc bench/out/producer-memory.mjs DATA_DIR [--gc [EVERY]]   (bundled by bench/lib/child.ts)
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { serialize } from "node:v8";
import { FASHION_MNIST } from "../src/core/registry";
import type { Digest } from "../src/codec/digest";
import { Archives } from "../src/pipeline/archive";
import { extractImages, extractLabels, peekImages } from "../src/pipeline/extract";
import { DEFAULT_RETRY } from "../src/pipeline/fetch";
import type { ChunkMessage } from "../src/pipeline/messages";
import { planChunks } from "../src/pipeline/plan";
import { Producer } from "../src/pipeline/produce";
import { measurePeak } from "./lib/memory";

const [dir, flag, everyArg] = process.argv.slice(2);
if (!dir) throw new Error("usage: producer-memory.ts DATA_DIR [--gc [EVERY]]");

const fileFetch = async (url: string): Promise<Response> => {
  const path = join(dir, decodeURIComponent(new URL(url).pathname.slice(1)));
  const { size } = await stat(path);
  const body = Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>;
  return new Response(body, { headers: { "Content-Length": String(size) } });
};

const md5 = (): Digest => {
  const h = createHash("md5");
  return { update: (c) => void h.update(c), hex: async () => h.digest("hex") };
};

const CHUNK_SIZE = 160; // wrangler.toml's CHUNK_SIZE

let sentBytes = 0;
let rows = 0;
const started = performance.now();
const report = await measurePeak(
  async (sample) => {
    const send = async (batch: ChunkMessage[]) => {
      for (const body of batch) sentBytes += serialize(body).length;
      sample();
    };
    const opts = {
      dataset: FASHION_MNIST,
      mirrors: [{ url: "http://bench.invalid", packaging: "files" as const }],
      official: false,
      retry: { ...DEFAULT_RETRY, attempts: 1, timeoutMs: 600_000 },
    };
    // MD5s are taken and checked as in the job; pinning them is the job's D1 work, not measured here.
    const archives = new Archives(opts, { fetch: fileFetch, md5 }, async () => {});
    const labels = await extractLabels(archives);
    const layout = await peekImages(archives, labels);
    const planned = labels.flatMap((l) => planChunks(l, CHUNK_SIZE));
    // The job's own producer; only `send` differs.
    const producer = new Producer({ run: { runId: "bench", attempt: 1, dataset: FASHION_MNIST.name }, planned, send });
    for await (const chunk of extractImages(archives, labels, layout, CHUNK_SIZE)) await producer.add(chunk);
    await producer.flush();
    rows = labels.reduce((n, s) => n + s.count, 0);
  },
  { forceGc: flag === "--gc", every: Number(everyArg ?? 1) },
);
console.log(JSON.stringify({ ...report, rows, sentBytes, seconds: (performance.now() - started) / 1000 }));
