/**
 * A dataset k× Fashion-MNIST for the scaling measurement: the real images and
 * labels repeated k times, gzipped as a stream into a temp directory (600k
 * train images are 470 MB inflated: never held in memory whole). Level 1 gzip:
 * generation speed matters here, not the archive size.
 */
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { gunzipSync } from "node:zlib";
import { createGzip } from "node:zlib";
import { FASHION_MNIST } from "../../src/core/registry";

async function repeatIdx(src: string, dst: string, times: number): Promise<number> {
  const raw = gunzipSync(await readFile(src));
  const ndim = raw[3]!;
  const headerLength = 4 + 4 * ndim;
  const header = Buffer.from(raw.subarray(0, headerLength));
  const count = header.readUInt32BE(4);
  header.writeUInt32BE(count * times, 4);
  const gzip = createGzip({ level: 1 });
  const out = gzip.pipe(createWriteStream(dst));
  const write = (b: Uint8Array) => (gzip.write(b) ? Promise.resolve() : new Promise((ok) => gzip.once("drain", ok)));
  await write(header);
  const body = raw.subarray(headerLength);
  for (let i = 0; i < times; i++) await write(body);
  gzip.end();
  await finished(out);
  return count * times;
}

/** Writes the four archives under Fashion-MNIST's names; returns the directory and the row count. */
export async function syntheticDataset(dataDir: string, times: number): Promise<{ dir: string; rows: number }> {
  const dir = await mkdtemp(join(tmpdir(), `idx-etl-bench-x${times}-`));
  let rows = 0;
  for (const s of FASHION_MNIST.splits) {
    rows += await repeatIdx(join(dataDir, s.labels.file), join(dir, s.labels.file), times);
    await repeatIdx(join(dataDir, s.images.file), join(dir, s.images.file), times);
  }
  return { dir, rows };
}
