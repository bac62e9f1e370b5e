/**
 * Materialising a dataset's exports: after a run completes, a job on the jobs
 * queue writes every export file of the current version (read/export-files.ts:
 * per split the float32, uint8 and labels .npy and the Parquet file, and the
 * Keras .npz) to the EXPORTS bucket, so that every later download streams
 * from R2 and reads no image row. It reads each split's rows from D1 once,
 * pinned to the version, and hands each page to every file's encoder, the
 * same encoders that serve a file from D1: the bytes are D1's by
 * construction. It records each file's size and SHA-256 (for croissant.json),
 * then the version as exported, and deletes older versions' files.
 *
 * Without a bucket the same pass only hashes (`recordDigests`), when
 * croissant.json first asks for the checksums.
 *
 * Idempotent: a file stored at its full size whose digest is recorded is kept
 * and not read again; one missing or cut short is written again; a version
 * that stops being current while the job runs is neither recorded nor kept:
 * the run that replaced it queues its own job.
 */
import { SPLITS } from "../core/datasets";
import { errorMessage } from "../core/errors";
import { database } from "../db/database";
import { readFileRecords, recordExports, recordFiles, type FileRecord } from "../db/exports";
import { readDataset } from "../read/datasets";
import type { VersionFacts } from "../read/encoders";
import {
  encoderOf,
  fileKey,
  fileName,
  fileSize,
  mediaType,
  readDatasetFacts,
  versionFiles,
  type ExportFile,
} from "../read/export-files";
import { datasetPrefix, versionPrefix } from "../read/export-store";
import { readRowPages } from "../read/rows";
import { DigestSink, MAX_OBJECT_BYTES, R2Sink, type FileSink } from "./export-sinks";
import type { ExportMessage } from "./messages";

/** The largest file written to R2: one object. A larger one is left to D1 rather than refused on every try. */
export const MAX_FILE_BYTES = MAX_OBJECT_BYTES;

/** What a materialising job did. */
export type Materialised =
  | { readonly kind: "unbound" }
  | { readonly kind: "not-loaded" }
  | {
      readonly kind: "exported";
      readonly version: string;
      /** Files this job put (the others were stored already, or are too large). */
      readonly written: number;
      /** Bytes of every file of the version that is stored now. */
      readonly bytes: number;
    }
  | { readonly kind: "superseded"; readonly version: string };

/**
 * Queue the job that materialises `dataset`'s current version, if there is a
 * bucket to put it in (or `digestsOnly`: to record its files' SHA-256s
 * without one). Never throws: without the job, exports read D1.
 */
export async function requestExports(env: Env, dataset: string, digestsOnly = false): Promise<void> {
  if (!env.EXPORTS && !digestsOnly) return;
  const message: ExportMessage = { kind: "export", dataset };
  try {
    await env.JOBS.send(message, { contentType: "json" });
  } catch (err) {
    console.warn(`${dataset}: could not queue its export job (${errorMessage(err)}); exports read D1 until it runs`);
  }
}

/** One file the pass writes: its encoder's output goes to `sink`. */
interface Pending {
  readonly file: ExportFile;
  readonly name: string;
  readonly sink: FileSink;
  /** Whether the sink puts it in R2 (else it is only hashed). */
  readonly puts: boolean;
}

export async function materialiseExports(
  env: Env,
  dataset: string,
  maxFileBytes = MAX_FILE_BYTES,
): Promise<Materialised> {
  const bucket = env.EXPORTS;
  if (!bucket) return { kind: "unbound" };
  const d = await readDataset(env.DB, dataset);
  // A broken dataset (a table dropped by hand) has nothing to export until it is reloaded.
  if (!d || d.missingTables.length > 0) return { kind: "not-loaded" };
  const facts = await readDatasetFacts(env.DB, dataset);
  if (!facts) return { kind: "not-loaded" };
  const { version } = facts;
  const recorded = await recordedFiles(env, facts);
  const pending: Pending[] = [];
  let bytes = 0;
  // Every file is checked, even of a version already recorded: a lost or cut one is written again.
  for (const file of versionFiles(facts)) {
    const name = fileName(dataset, file);
    const size = fileSize(facts, file);
    const key = fileKey(dataset, version, file);
    if (size > maxFileBytes) {
      console.warn(`${key}: ${size} bytes is more than this job writes to R2; this file's exports read D1`);
      continue;
    }
    bytes += size;
    const stored = (await bucket.head(key))?.size === size;
    if (stored && recorded.get(name) === size) continue;
    const meta = { dataset, version, file: name };
    const sink = stored
      ? new DigestSink(size)
      : new R2Sink(bucket, key, size, { httpMetadata: { contentType: mediaType(file) }, customMetadata: meta });
    pending.push({ file, name, sink, puts: !stored });
  }
  const written = pending.filter((p) => p.puts).length;
  const outcome = await writeAll(env, facts, pending);
  if (outcome === "superseded") return { kind: "superseded", version };
  if (!d.exported || written > 0) {
    if (!(await recordExports(database(env.DB), dataset, version, bytes, new Date().toISOString())))
      return { kind: "superseded", version };
  }
  // Keep what is current now: a swap since the record above makes this version's files stale too.
  const current = (await readDataset(env.DB, dataset))?.version;
  if (current) await pruneExports(bucket, dataset, current);
  return { kind: "exported", version, written, bytes };
}

/**
 * Without a bucket: compute and record the SHA-256 of every file of the
 * current version whose digest is not recorded, by the same pass over D1.
 */
export async function recordDigests(env: Env, dataset: string): Promise<"recorded" | "not-loaded" | "superseded"> {
  const facts = await readDatasetFacts(env.DB, dataset);
  if (!facts) return "not-loaded";
  const recorded = await recordedFiles(env, facts);
  const pending = versionFiles(facts)
    .map((file) => ({ file, name: fileName(dataset, file), size: fileSize(facts, file) }))
    .filter((f) => recorded.get(f.name) !== f.size)
    .map((f) => ({ file: f.file, name: f.name, sink: new DigestSink(f.size), puts: false }));
  return (await writeAll(env, facts, pending)) === "superseded" ? "superseded" : "recorded";
}

/** Recorded files of the version: name → size. */
async function recordedFiles(env: Env, facts: VersionFacts): Promise<Map<string, number>> {
  const rows = await readFileRecords(database(env.DB), facts.dataset, facts.version);
  return new Map(rows.map((r) => [r.file, r.bytes]));
}

/**
 * The pass: each split's rows read once, if any file needs them, every page
 * handed to each file's encoder and on to its sink; then the sinks closed.
 * The files' sizes and digests, in the order given.
 */
export async function writeFiles(
  db: D1Database,
  facts: VersionFacts,
  files: readonly { readonly file: ExportFile; readonly name: string; readonly sink: FileSink }[],
): Promise<FileRecord[]> {
  const work = files.map((p) => ({ ...p, encoder: encoderOf(facts, p.file) }));
  const records = new Map<string, FileRecord>();
  for (const split of SPLITS) {
    const readers = work.filter((w) => w.encoder.splits.includes(split));
    if (readers.length === 0) continue;
    for (const w of readers) await w.sink.write(w.encoder.begin(split));
    const span = { dataset: facts.dataset, shape: facts.shape, split, version: facts.version };
    for await (const page of readRowPages(db, { ...span, from: 0, to: facts.counts[split] })) {
      for (const w of readers) await w.sink.write(w.encoder.page(page));
    }
    for (const w of readers) {
      await w.sink.write(w.encoder.finish(split));
      // A file whose last split this was is closed now: its part buffer is not held through the next split.
      if (w.encoder.splits.at(-1) === split) records.set(w.name, { file: w.name, ...(await w.sink.close()) });
    }
  }
  return work.map((w) => records.get(w.name)!);
}

/** writeFiles, then the digests recorded; a failure aborts every upload, and a swap meanwhile is no failure. */
async function writeAll(env: Env, facts: VersionFacts, pending: readonly Pending[]): Promise<"done" | "superseded"> {
  if (pending.length === 0) return "done";
  let records: FileRecord[];
  try {
    records = await writeFiles(env.DB, facts, pending);
  } catch (err) {
    await Promise.all(pending.map((p) => p.sink.abort()));
    // An export that a swap overtook errors on its first page of the new rows: not a failure.
    const now = await readDataset(env.DB, facts.dataset);
    if (now?.version !== facts.version) return "superseded";
    throw new Error(`${facts.dataset} ${facts.version}: ${errorMessage(err)}`);
  }
  return (await recordFiles(database(env.DB), facts.dataset, facts.version, records)) ? "done" : "superseded";
}

/** Delete every file of the dataset's versions but `version`: swaps replaced them, and no route serves them. */
async function pruneExports(bucket: R2Bucket, dataset: string, version: string): Promise<void> {
  const keep = versionPrefix(dataset, version);
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: datasetPrefix(dataset), ...(cursor ? { cursor } : {}) });
    const stale = page.objects.map((o) => o.key).filter((k) => !k.startsWith(keep));
    if (stale.length > 0) await bucket.delete(stale);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
}
