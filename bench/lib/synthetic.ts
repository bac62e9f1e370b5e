/**
 * A synthetic dataset the size and shape of a registry dataset (the bench's
 * scaling section uses EMNIST ByClass: the largest in the registry), for
 * measuring the job at that size without its download: the four archives
 * under the registry's own file names (what a `source` directory of loose
 * member files holds), gzipped once as a stream into a temp directory, never
 * held in memory whole.
 *
 * Deterministic: the images are the Fashion-MNIST split's images taken in
 * order, over and over, and image i's label is i mod the class count. Real
 * photographs of clothes compress worse than EMNIST's handwriting, so the
 * archives inflate with at least EMNIST's effort per image: a conservative
 * stand-in for CPU. The headers say the spec's own counts (times `scale`).
 */
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { finished } from "node:stream/promises";
import { createGzip, gunzipSync } from "node:zlib";
import { pixelsPerImage, type DatasetSpec, type Split } from "../../src/core/datasets";
import { FASHION_MNIST } from "../../src/core/registry";

/** Images written per gzip write: large enough to keep zlib busy, small enough to stay out of the way. */
const BLOCK_IMAGES = 2_000;

function idxHeader(dims: readonly number[], ndim: number): Buffer {
  const h = Buffer.alloc(4 + 4 * ndim);
  h.writeUInt32BE(0x0800 + ndim, 0);
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return h;
}

/** Streams `header`, then `count` items of `itemBytes` that `fill` writes a block at a time, through gzip into `dst`. */
async function writeIdx(
  dst: string,
  header: Buffer,
  count: number,
  itemBytes: number,
  fill: (first: number, n: number, into: Buffer) => void,
): Promise<void> {
  const gzip = createGzip();
  const out = gzip.pipe(createWriteStream(dst));
  const write = (b: Uint8Array) => (gzip.write(b) ? Promise.resolve() : new Promise((ok) => gzip.once("drain", ok)));
  await write(header);
  for (let first = 0; first < count; first += BLOCK_IMAGES) {
    const n = Math.min(BLOCK_IMAGES, count - first);
    // A fresh block per write: gzip may still hold the last one.
    const block = Buffer.alloc(n * itemBytes);
    fill(first, n, block);
    await write(block);
  }
  gzip.end();
  await finished(out);
}

export interface SyntheticDataset {
  readonly dir: string;
  readonly counts: Record<Split, number>;
  /** Compressed bytes of the four archives. */
  readonly bytes: number;
}

/**
 * `spec`'s four files (28×28 images only: Fashion-MNIST's are the source),
 * `scale` times its published counts, from the Fashion-MNIST archives in `dataDir`.
 */
export async function syntheticDataset(dataDir: string, spec: DatasetSpec, scale = 1): Promise<SyntheticDataset> {
  if (!spec.shape || pixelsPerImage(spec.shape) !== pixelsPerImage(FASHION_MNIST.shape!) || !spec.classes) {
    throw new Error(`${spec.name}: a synthetic copy needs 28×28 images and class names`);
  }
  const ppi = pixelsPerImage(spec.shape);
  const classes = spec.classes.length;
  const dir = await mkdtemp(join(tmpdir(), `idx-etl-bench-${spec.name}-`));
  const counts = { train: 0, test: 0 };
  for (const s of spec.splits) {
    const count = Math.max(1, Math.round((s.count ?? 0) * scale));
    counts[s.split] = count;
    const source = FASHION_MNIST.splits.find((f) => f.split === s.split)!;
    const raw = gunzipSync(await readFile(join(dataDir, source.images.file)));
    const images = raw.subarray(16);
    const have = images.length / ppi;
    await writeIdx(join(dir, basename(s.labels.file)), idxHeader([count], 1), count, 1, (first, n, into) => {
      for (let i = 0; i < n; i++) into[i] = (first + i) % classes;
    });
    // Stored as the spec says the files store them (EMNIST: transposed); the pixels' content is Fashion-MNIST's either way.
    await writeIdx(
      join(dir, basename(s.images.file)),
      idxHeader([count, spec.shape.rows, spec.shape.cols], 3),
      count,
      ppi,
      (first, n, into) => {
        for (let i = 0; i < n; i++) {
          const src = (first + i) % have;
          into.set(images.subarray(src * ppi, (src + 1) * ppi), i * ppi);
        }
      },
    );
  }
  let bytes = 0;
  for (const s of spec.splits) {
    for (const f of [s.images.file, s.labels.file]) bytes += (await stat(join(dir, basename(f)))).size;
  }
  return { dir, counts, bytes };
}
