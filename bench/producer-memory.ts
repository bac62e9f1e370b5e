/**
 * Child process (node --expose-gc): the producer path — download stream → MD5 →
 * gunzip with CRC check → IDX validation → staging writes — exactly as
 * src/pipeline/extract.ts runs it, with Node seams: archives read from disk as a
 * fetch Response, node:crypto MD5, and a staging store that counts and discards
 * (R2 keeps the bytes, not the Worker). Prints one JSON line.
 *
 *   node --expose-gc bench/out/producer-memory.mjs DATA_DIR [--gc [EVERY]]   (bundled by bench/lib/child.ts)
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { FASHION_MNIST } from "../src/datasets";
import { extractImages, extractLabels, type Digest } from "../src/pipeline/extract";
import type { Staging } from "../src/pipeline/staging";
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

let staged = 0;
let rows = 0;
const started = performance.now();
const report = await measurePeak(
  async (sample) => {
    const staging: Staging = {
      create: () => ({
        write: async (chunk) => {
          staged += chunk.length;
          sample();
        },
        close: async () => {},
        abort: async () => {},
      }),
      read: () => Promise.reject(new Error("not used by the producer")),
      removeRun: async () => {},
    };
    const opts = {
      runId: "bench",
      dataset: FASHION_MNIST,
      source: "http://bench.invalid",
      official: false,
      retry: { attempts: 1, timeoutMs: 600_000, backoffMs: 1 },
    };
    const deps = { fetch: fileFetch, staging, md5 };
    const checksums: Record<string, string> = {};
    const labels = await extractLabels(opts, deps, checksums);
    // Segments as the Worker stages them (CHUNK_SIZE 500 × SEGMENT_CHUNKS 10).
    await extractImages(opts, deps, labels, 5000, async () => {}, checksums);
    rows = labels.reduce((n, s) => n + s.count, 0);
  },
  { forceGc: flag === "--gc", every: Number(everyArg ?? 1) },
);
console.log(JSON.stringify({ ...report, rows, stagedBytes: staged, seconds: (performance.now() - started) / 1000 }));
