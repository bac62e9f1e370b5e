/**
 * The files a dataset version is exported as, and how a whole one is read:
 * per split its images as float32 and as uint8 .npy, its labels .npy and its
 * Parquet file, and the dataset's Keras .npz. Every file's name, R2 key,
 * media type and exact size follow from the version's facts (shape, counts,
 * class names) without reading a row.
 *
 * A whole file is a byte range of its R2 object once materialised
 * (pipeline/materialise.ts), or else encoded from D1 as the client reads:
 * from the resume point that reaches the range's first byte, and no further
 * than its last. The .npy files also have slices (offset, limit), which
 * read/export.ts and read/export-store.ts serve.
 */
import type { Split } from "../core/datasets";
import { SPLITS } from "../core/datasets";
import { exportStem, npyByteLength, type ByteRange, type ExportKind, type NpyExport } from "./export";
import {
  npyEncoder,
  npzEncoder,
  npzOf,
  parquetEncoder,
  parquetOf,
  resumeNpz,
  resumeParquet,
  type Resume,
  type RowEncoder,
  type VersionFacts,
} from "./encoders";
import { readClasses, readDataset, type LoadedDataset } from "./datasets";
import { readRowPages } from "./rows";

export type ExportFile =
  | { readonly format: "npy"; readonly split: Split; readonly kind: ExportKind }
  | { readonly format: "parquet"; readonly split: Split }
  | { readonly format: "npz" };

export const NPY_KINDS: readonly ExportKind[] = ["images", "uint8", "labels"];

/** A loaded dataset's export facts: its catalog entry and its class names (one more statement, unless given). */
export async function readFacts(
  db: D1Database,
  d: LoadedDataset,
  known?: readonly { label: number; name: string }[],
): Promise<VersionFacts | undefined> {
  if (d.version === null || d.shape === null) return undefined;
  const classes = known ?? (await readClasses(db, d.name));
  const classNames = Array.from({ length: classes.length }, (_, label) => String(label));
  for (const c of classes) classNames[c.label] = c.name;
  return { dataset: d.name, version: d.version, shape: d.shape, counts: d.counts, classNames };
}

/** A dataset's export facts, read from the catalog; undefined if it is not loaded. */
export async function readDatasetFacts(db: D1Database, dataset: string): Promise<VersionFacts | undefined> {
  const d = await readDataset(db, dataset);
  return d ? readFacts(db, d) : undefined;
}

/** The file's name as downloaded: `train.npy`, `train-uint8.npy`, `train-labels.npy`, `train.parquet`, `<dataset>.npz`. */
export function fileName(dataset: string, f: ExportFile): string {
  switch (f.format) {
    case "npy":
      return `${exportStem(f.split, f.kind)}.npy`;
    case "parquet":
      return `${f.split}.parquet`;
    case "npz":
      return `${dataset}.npz`;
  }
}

/** Where a version's file lives in the bucket: one prefix per dataset, then one per version. */
export const fileKey = (dataset: string, version: string, f: ExportFile): string =>
  `${dataset}/${version}/${fileName(dataset, f)}`;

/** The HTTP Content-Type: Parquet's registered type; .npy and .npz are bytes to numpy. */
export const mediaType = (f: ExportFile): string =>
  f.format === "parquet" ? "application/vnd.apache.parquet" : "application/octet-stream";

export function fileSize(facts: VersionFacts, f: ExportFile): number {
  switch (f.format) {
    case "npy":
      return npyByteLength({ kind: f.kind, count: facts.counts[f.split], shape: facts.shape });
    case "parquet":
      return parquetOf(facts, f.split).size;
    case "npz":
      return npzOf(facts).size;
  }
}

/** Every file of a version: per split that has rows, its three .npy and its Parquet file; then the .npz. */
export const versionFiles = (facts: VersionFacts): ExportFile[] => [
  ...SPLITS.filter((s) => facts.counts[s] > 0).flatMap((split): ExportFile[] => [
    ...NPY_KINDS.map((kind) => ({ format: "npy" as const, split, kind })),
    { format: "parquet", split },
  ]),
  { format: "npz" },
];

/** The encoder that writes the whole file from its first byte. */
export function encoderOf(facts: VersionFacts, f: ExportFile): RowEncoder {
  switch (f.format) {
    case "npy":
      return npyEncoder(facts, f.split, f.kind);
    case "parquet":
      return parquetEncoder(parquetOf(facts, f.split), f.split);
    case "npz":
      return npzEncoder(facts);
  }
}

/** Where to start encoding to reach byte `start` of a whole Parquet or .npz file. */
function resumeOf(facts: VersionFacts, f: Exclude<ExportFile, { format: "npy" }>, start: number): Resume {
  return f.format === "npz" ? resumeNpz(facts) : resumeParquet(parquetOf(facts, f.split), f.split, start);
}

/**
 * Bytes `range` (default: all) of a whole Parquet or .npz file, encoded from
 * D1's rows as the consumer reads: one page of rows at a time, none past the
 * range's end.
 */
export function encodedFile(
  db: D1Database,
  facts: VersionFacts,
  f: Exclude<ExportFile, { format: "npy" }>,
  range?: ByteRange,
): NpyExport {
  const size = fileSize(facts, f);
  const { start, end } = range ?? { start: 0, end: size };
  if (!(0 <= start && start <= end && end <= size))
    throw new RangeError(`bytes ${start}…${end - 1} are not within the file's ${size}`);
  const resume = resumeOf(facts, f, start);
  const parts = trimmed(encode(db, facts, resume), resume.offset, start, end);
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { done, value } = await parts.next();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      async cancel() {
        await parts.return(undefined);
      },
    },
    { highWaterMark: 0 },
  );
  return { body, byteLength: end - start };
}

/** The encoder's output from the resume point on, split by split, page by page. */
async function* encode(db: D1Database, facts: VersionFacts, resume: Resume): AsyncGenerator<Uint8Array[]> {
  const { encoder } = resume;
  const splits = encoder.splits.slice(encoder.splits.indexOf(resume.split));
  for (const [i, split] of splits.entries()) {
    yield encoder.begin(split);
    const from = i === 0 ? resume.row : 0;
    const span = { dataset: facts.dataset, shape: facts.shape, split, version: facts.version, from };
    for await (const page of readRowPages(db, { ...span, to: facts.counts[split] })) yield encoder.page(page);
    yield encoder.finish(split);
  }
}

/** Of pieces that begin at byte `offset`, the parts within `start` … `end - 1`; stops once `end` is reached. */
async function* trimmed(pieces: AsyncGenerator<Uint8Array[]>, offset: number, start: number, end: number) {
  let at = offset;
  if (at >= end) return;
  for await (const batch of pieces) {
    for (const piece of batch) {
      const lo = Math.max(start - at, 0);
      const hi = Math.min(end - at, piece.length);
      at += piece.length;
      if (hi > lo) yield lo === 0 && hi === piece.length ? piece : piece.subarray(lo, hi);
      if (at >= end) {
        await pieces.return(undefined);
        return;
      }
    }
  }
}

/**
 * Bytes `range` (default: all) of a whole file from its R2 object; undefined
 * if there is none or it is not the size the file must be (the caller reads
 * D1 instead).
 */
export async function storedFile(
  bucket: R2Bucket,
  facts: VersionFacts,
  f: ExportFile,
  range?: ByteRange,
): Promise<NpyExport | undefined> {
  const size = fileSize(facts, f);
  const { start, end } = range ?? { start: 0, end: size };
  const key = fileKey(facts.dataset, facts.version, f);
  if (end === start) return undefined;
  const object = await bucket.get(key, { range: { offset: start, length: end - start } });
  if (object === null) return undefined;
  if (object.size !== size) {
    await object.body.cancel();
    console.error(`export ${key}: stored ${object.size} bytes, the file is ${size}; reading D1 instead`);
    return undefined;
  }
  return { body: object.body, byteLength: end - start };
}
