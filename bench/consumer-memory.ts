/**
 * Child process (node --expose-gc): one chunk-consumer invocation's own work,
 * as src/pipeline/consume.ts does it — max_batch_size messages arrive, each
 * with its chunk's pixels (here read from the inflated images file on disk into
 * a fresh buffer, as deserializing a message gives one); their D1 statements
 * are built with the real chunksStatements() and kept alive until the
 * (simulated) batch call returns. Prints one JSON line.
 *
 *   node --expose-gc bench/out/consumer-memory.mjs IMAGES_IDX CHUNK_SIZE BATCH_SIZE ROWS_PER_STATEMENT [--gc]
 */
import { open } from "node:fs/promises";
import { chunkDigest } from "../src/codec/digest";
import { chunksStatements, type ChunkRows } from "../src/db/load";
import { measurePeak } from "./lib/memory";

const [file, chunkArg, batchArg, rpsArg, flag] = process.argv.slice(2);
const chunkSize = Number(chunkArg);
const batchSize = Number(batchArg);
const rowsPerStatement = Number(rpsArg);
if (!file || !(chunkSize > 0) || !(batchSize > 0) || !(rowsPerStatement > 0))
  throw new Error("usage: consumer-memory.ts IMAGES_IDX CHUNK_SIZE BATCH_SIZE ROWS_PER_STATEMENT [--gc]");

const PPI = 784;
const HEADER = 16;
const fh = await open(file, "r");
let statements = 0;
let paramBytes = 0;
const report = await measurePeak(
  async (sample) => {
    const chunks: ChunkRows[] = [];
    for (let m = 0; m < batchSize; m++) {
      const start = m * chunkSize;
      const pixels = new Uint8Array(chunkSize * PPI);
      const { bytesRead } = await fh.read(pixels, 0, pixels.length, HEADER + start * PPI);
      if (bytesRead !== pixels.length) throw new Error(`${file}: short read at image ${start}`);
      const labels = new Uint8Array(chunkSize).fill(7);
      chunks.push({
        dataset: "fashion-mnist",
        split: "train",
        start,
        labels,
        pixels,
        pixelsPerImage: PPI,
        digest: await chunkDigest(labels, pixels),
      });
      sample();
    }
    const batch = chunksStatements("bench", chunks, rowsPerStatement, new Date().toISOString());
    sample();
    statements += batch.length;
    for (const s of batch) for (const p of s.params) paramBytes += String(p).length;
    // The D1 call: the statements stay referenced until it returns.
    await new Promise((r) => setTimeout(r, 10));
    sample();
  },
  { forceGc: flag === "--gc" },
);
await fh.close();
console.log(JSON.stringify({ ...report, statements, paramBytes }));
