/**
 * Deleting a dataset (DELETE /datasets/{name}, `npm run etl -- --delete`):
 * first from D1, in one guarded transaction (db/delete.ts) that a run of the
 * dataset being active refuses, then its objects in R2 (exports, and whatever
 * else is kept under the dataset's prefixes). D1 goes first: once its catalog
 * entry is gone nothing serves or records the objects, so removing them
 * cannot strand a reader; an R2 failure after it leaves only objects, which a
 * repeated deletion removes.
 */
import { errorMessage } from "../core/errors";
import { abandonStale } from "../db/run-start";
import { activeRun } from "../db/run-reads";
import { deleteFromD1, type DatasetTraces } from "../db/delete";
import { now, type Db } from "../db/database";
import { datasetObjectPrefixes } from "../read/bucket";
import type { Run } from "../db/schema";

export type DeleteResult =
  | {
      readonly kind: "deleted";
      /** What D1 held of it before. */
      readonly traces: DatasetTraces;
      /** Objects removed from R2 (0 without a bucket). */
      readonly objects: number;
    }
  | { readonly kind: "active"; readonly run: Run }
  /** D1 is done; R2 failed (the message says how). */
  | { readonly kind: "objects-failed"; readonly traces: DatasetTraces; readonly message: string };

/** Delete every object under `prefix`, a page of up to 1,000 at a time; how many there were. */
async function deletePrefix(bucket: R2Bucket, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, ...(cursor ? { cursor } : {}) });
    const keys = page.objects.map((o) => o.key);
    if (keys.length > 0) await bucket.delete(keys);
    deleted += keys.length;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return deleted;
}

export async function deleteDataset(
  db: Db,
  bucket: R2Bucket | undefined,
  dataset: string,
  leaseMs: number,
): Promise<DeleteResult> {
  // As a trigger does: a run silent for a lease is presumed dead and does not block.
  await abandonStale(db, now(), leaseMs);
  const active = await activeRun(db, dataset);
  if (active) return { kind: "active", run: active };
  const outcome = await deleteFromD1(db.$client, dataset, crypto.randomUUID(), now());
  if (!outcome.deleted) {
    const run = await activeRun(db, dataset);
    if (run) return { kind: "active", run };
    throw new Error(`deleting ${dataset} was refused for an active run that is no longer active; try again`);
  }
  let objects = 0;
  try {
    if (bucket) for (const prefix of datasetObjectPrefixes(dataset)) objects += await deletePrefix(bucket, prefix);
  } catch (err) {
    const message = `${dataset} was deleted from D1, but deleting its objects from R2 failed (${errorMessage(err)}); DELETE /datasets/${dataset} again to finish`;
    return { kind: "objects-failed", traces: outcome.traces, message };
  }
  return { kind: "deleted", traces: outcome.traces, objects };
}
