/**
 * Child process (node --expose-gc): the export job's pass over a dataset of
 * any size, without D1 or R2. `after`: src/pipeline/materialise.ts
 * writeFiles, every export file (three .npy and a Parquet file per split, the
 * .npz) from one read of each split into R2Sinks, each file streamed into one put; `before`: the four .npy
 * files as the job wrote them until now, each its own read of D1 streamed
 * into one put (read/export.ts npyExport).
 *
 * Node seams, nothing else: D1 answers each page query with rows cut from
 * the real t10k images (cycled, as packed hex, as SQLite's
 * replace(hex(pixels), '00000000', 'g') gives them), R2 counts the bytes and
 * parts it is handed, node:crypto stands behind the runtime's DigestStream
 * and a TransformStream behind its FixedLengthStream. Prints one JSON line: CPU seconds (every thread, GC
 * included), wall seconds, the peak of V8's heap + external memory above
 * what the process held before (garbage included; sampled every 5 ms and at
 * each upload), the live peak (after a full GC at each page and each
 * upload), parts, bytes. The fake D1's
 * rows (a page of row arrays and the t10k images' text, held for the run)
 * count in both.
 *
 *   node --expose-gc bench/out/materialise-probe.mjs MODE TRAIN TEST T10K_IMAGES_GZ   (bundled by bench/lib/child.ts)
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { gunzipSync } from "fflate";
import { pixelsToPackedHex } from "../src/codec/transform";
import { versionFiles, fileName, fileSize } from "../src/read/export-files";
import { npyExport, type ExportKind } from "../src/read/export";
import type { VersionFacts } from "../src/read/encoders";
import { R2Sink } from "../src/pipeline/export-sinks";
import { writeFiles } from "../src/pipeline/materialise";

const [mode, trainArg, testArg, t10k] = process.argv.slice(2);
if ((mode !== "before" && mode !== "after") || !trainArg || !testArg || !t10k)
  throw new Error("usage: materialise-probe before|after TRAIN TEST T10K_IMAGES_GZ");
console.log = (...args: unknown[]) => console.error(...args);

class DigestStream extends WritableStream<ArrayBufferView | ArrayBuffer> {
  readonly digest: Promise<ArrayBuffer>;
  constructor(algorithm: string) {
    const hash = createHash(algorithm.replace("-", "").toLowerCase());
    let done!: (b: ArrayBuffer) => void;
    const digest = new Promise<ArrayBuffer>((ok) => (done = ok));
    super({
      write: (chunk) => void hash.update(chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : (chunk as Uint8Array)),
      close: () => {
        const b = hash.digest();
        done(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
      },
    });
    this.digest = digest;
  }
}
(globalThis as unknown as { crypto: { DigestStream: typeof DigestStream } }).crypto.DigestStream = DigestStream;

/** workerd's FixedLengthStream: an identity stream that errors unless exactly `length` bytes pass. */
class FixedLengthStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor(length: number) {
    let seen = 0;
    super({
      transform(chunk, controller) {
        seen += chunk.length;
        if (seen > length) throw new RangeError(`more than the stream's ${length} bytes`);
        controller.enqueue(chunk);
      },
      flush() {
        if (seen !== length) throw new RangeError(`${seen} bytes of the stream's ${length}`);
      },
    });
  }
}
(globalThis as unknown as { FixedLengthStream: typeof FixedLengthStream }).FixedLengthStream = FixedLengthStream;

const inUse = () => process.memoryUsage().heapUsed + process.memoryUsage().external;
const gc = (globalThis as { gc?: () => void }).gc!;
let peak = 0;
let livePeak = 0;
const sample = () => void (peak = Math.max(peak, inUse()));
/** After a full collection: what the pass holds live at that moment (taken at each page and each upload). */
const sampleLive = () => {
  gc();
  livePeak = Math.max(livePeak, inUse());
};

// ---------------------------------------------------------------- D1: pages of the t10k images, cycled

const images = gunzipSync(new Uint8Array(await readFile(t10k))).subarray(16);
const IMAGES = images.length / 784;
// Packed hex as D1 hands it over (a zero pixel's eight "0"s as one stand-in), one string per image.
const { text, starts } = pixelsToPackedHex(images, 784);
const packed = Array.from({ length: IMAGES }, (_, i) => text.slice(starts[i], starts[i + 1]));
let queries = 0;
const db = {
  prepare: (sql: string) => ({
    bind: (...params: unknown[]) => ({
      raw: async () => {
        queries++;
        const [from, to] = [params[1] as number, params[2] as number];
        const rows: unknown[][] = [];
        for (let i = from; i < to; i++) {
          const label = i % 10;
          if (/SELECT label, replace/.test(sql)) rows.push([label, packed[i % IMAGES]]);
          else if (/SELECT replace/.test(sql)) rows.push([packed[i % IMAGES]]);
          else rows.push([label]);
        }
        sample();
        sampleLive();
        return rows;
      },
    }),
  }),
} as unknown as D1Database;

// ---------------------------------------------------------------- R2: bytes and parts counted, then dropped

let parts = 0;
let stored = 0;
const drain = async (body: unknown) => {
  if (body instanceof ReadableStream) for await (const c of body as ReadableStream<Uint8Array>) stored += c.length;
  else stored += (body as Uint8Array).length;
  parts++;
  sample();
  sampleLive();
};
const bucket = {
  put: async (_key: string, body: unknown) => void (await drain(body)),
  createMultipartUpload: async () => ({
    uploadPart: async (n: number, body: unknown) => {
      await drain(body);
      return { partNumber: n, etag: String(n) };
    },
    complete: async () => ({}),
    abort: async () => {},
  }),
} as unknown as R2Bucket;

// ---------------------------------------------------------------- the pass

const counts = { train: Number(trainArg), test: Number(testArg) };
const facts: VersionFacts = {
  dataset: "bench",
  version: "v1",
  shape: { rows: 28, cols: 28, channels: 1 },
  counts,
  classNames: Array.from({ length: 10 }, (_, i) => `class ${i}`),
};

// ArrayBuffers' memory is released after a collection, not by it: settle before taking the baseline.
for (let i = 0; i < 5; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 100));
}
const rest = inUse();
peak = rest;
livePeak = rest;
const timer = setInterval(sample, 5);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
if (mode === "after") {
  const files = versionFiles(facts).map((file) => {
    const name = fileName(facts.dataset, file);
    return { file, name, sink: new R2Sink(bucket, name, fileSize(facts, file), {}) };
  });
  await writeFiles(db, facts, files);
} else {
  for (const split of ["train", "test"] as const)
    for (const kind of ["images", "labels"] as ExportKind[]) {
      const span = {
        dataset: "bench",
        shape: facts.shape,
        split,
        kind,
        offset: 0,
        count: counts[split],
        version: "v1",
      };
      await drain(npyExport(db, span).body);
    }
}
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
clearInterval(timer);
sample();
const mb = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
console.error(`${mode} ${counts.train}+${counts.test}: ${queries} queries, ${parts} puts/parts, ${stored} bytes`);
process.stdout.write(
  JSON.stringify({
    mode,
    ...counts,
    cpuSeconds: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
    wallSeconds: Math.round(wall * 100) / 100,
    peakAboveRestMb: mb(peak - rest),
    livePeakAboveRestMb: mb(livePeak - rest),
    restMb: mb(rest),
    queries,
    uploads: parts,
    bytes: stored,
  }) + "\n",
);
