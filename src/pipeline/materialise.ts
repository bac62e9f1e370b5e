/**
 * Materialising a dataset's exports to R2: after a run completes, a job on the
 * jobs queue writes the current version's four .npy files (train and test,
 * images and labels) to the EXPORTS bucket, reading D1 once, so that every
 * later download streams from R2 and reads no image row. The files are read
 * from D1 itself, with every page pinned to the version (read/export.ts), so
 * they are the bytes D1 holds by construction, not a second derivation of the
 * source. Then it records the version as exported and deletes older versions'
 * files.
 *
 * Idempotent: a file already stored at its full size is kept (an R2 put is
 * atomic, and a version's bytes never change), one missing or cut short is
 * written again, and a version that stops being current while the job runs
 * is neither recorded nor kept: the run that replaced it queues its own job.
 */
import { SPLITS } from "../core/datasets";
import { errorMessage } from "../core/errors";
import { recordExports } from "../db/exports";
import { database } from "../db/database";
import { readDataset } from "../read/datasets";
import { npyByteLength, npyExport, type ExportKind, type ExportSpan } from "../read/export";
import { datasetPrefix, exportKey, versionPrefix } from "../read/export-store";
import type { ExportMessage } from "./messages";

const KINDS: readonly ExportKind[] = ["images", "labels"];

/**
 * R2's largest single-part upload, 5 GiB less 5 MiB (developers.cloudflare.com/r2/platform/limits).
 * No D1 dataset comes near it (D1 holds 10 GB, two copies during a swap), but a larger file is
 * left to D1 rather than refused by R2 on every try.
 */
export const MAX_PUT_BYTES = 5 * 2 ** 30 - 5 * 2 ** 20;

/** What a materialising job did. */
export type Materialised =
  | { readonly kind: "unbound" }
  | { readonly kind: "not-loaded" }
  | {
      readonly kind: "exported";
      readonly version: string;
      /** Files this job put (the others were stored already, or are too large for one put). */
      readonly written: number;
      /** Bytes of every file of the version that is stored now. */
      readonly bytes: number;
    }
  | { readonly kind: "superseded"; readonly version: string };

/**
 * Queue the job that materialises `dataset`'s current version, if there is a
 * bucket to put it in. Never throws: without the job, exports read D1.
 */
export async function requestExports(env: Env, dataset: string): Promise<void> {
  if (!env.EXPORTS) return;
  const message: ExportMessage = { kind: "export", dataset };
  try {
    await env.JOBS.send(message, { contentType: "json" });
  } catch (err) {
    console.warn(
      `${dataset}: could not queue its exports to R2 (${errorMessage(err)}); they read D1 until the next run`,
    );
  }
}

export async function materialiseExports(
  env: Env,
  dataset: string,
  maxPutBytes = MAX_PUT_BYTES,
): Promise<Materialised> {
  const bucket = env.EXPORTS;
  if (!bucket) return { kind: "unbound" };
  const d = await readDataset(env.DB, dataset);
  // A broken dataset (a table dropped by hand) has nothing to export until it is reloaded.
  if (!d || d.version === null || d.shape === null || d.missingTables.length > 0) return { kind: "not-loaded" };
  const { version, shape } = d;
  let written = 0;
  let bytes = 0;
  // Every file is checked, even of a version already recorded: a lost or cut one is written again.
  try {
    for (const split of SPLITS) {
      const count = d.counts[split];
      if (count === 0) continue;
      for (const kind of KINDS) {
        const span: ExportSpan = { dataset, shape, split, kind, offset: 0, count, version };
        const size = npyByteLength(span);
        const key = exportKey(dataset, version, split, kind);
        if (size > maxPutBytes) {
          console.warn(`${key}: ${size} bytes is more than one R2 put takes; this file's exports read D1`);
          continue;
        }
        bytes += size;
        if ((await bucket.head(key))?.size === size) continue;
        await putExport(env.DB, bucket, key, span, size);
        written++;
      }
    }
  } catch (err) {
    // An export that a swap overtook errors on its first page of the new rows: not a failure.
    const now = await readDataset(env.DB, dataset);
    if (now?.version !== version) return { kind: "superseded", version };
    throw err;
  }
  if (!d.exported || written > 0) {
    if (!(await recordExports(database(env.DB), dataset, version, bytes, new Date().toISOString())))
      return { kind: "superseded", version };
  }
  // Keep what is current now: a swap since the record above makes this version's files stale too.
  const current = (await readDataset(env.DB, dataset))?.version;
  if (current) await pruneExports(bucket, dataset, current);
  return { kind: "exported", version, written, bytes };
}

/** One file, streamed from D1 page by page into one R2 put of its exact length. */
async function putExport(db: D1Database, bucket: R2Bucket, key: string, span: ExportSpan, size: number) {
  const { body } = npyExport(db, span);
  // R2 needs a stream's length up front; FixedLengthStream also errors a body of another length.
  const { readable, writable } = new FixedLengthStream(size);
  const [put, pipe] = await Promise.allSettled([
    bucket.put(key, readable, {
      httpMetadata: { contentType: "application/octet-stream" },
      customMetadata: { dataset: span.dataset, version: span.version ?? "", split: span.split, kind: span.kind },
    }),
    body.pipeTo(writable),
  ]);
  // Either side can be the cause (a page that changed mid-export, R2 refusing the put), and then the other fails
  // with it: both are said.
  const failures = [
    ...(pipe.status === "rejected" ? [`reading D1: ${errorMessage(pipe.reason)}`] : []),
    ...(put.status === "rejected" ? [`R2 put: ${errorMessage(put.reason)}`] : []),
  ];
  if (failures.length > 0) throw new Error(`${key}: ${failures.join("; ")}`);
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
