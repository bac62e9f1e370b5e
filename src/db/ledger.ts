/**
 * A run's ledger: the chunks it has committed (each with the digest of the
 * rows it wrote), and the archive MD5s it has pinned, so a redelivered chunk
 * or a later pass over a changed source is recognised.
 */
import { eq, sql } from "drizzle-orm";
import * as schema from "./schema";
import { now, type Db } from "./database";

/** A chunk's identity within a run's ledger, as `split:start:count` (count too: another chunk size is another plan). */
export const chunkKey = (c: { split: string; start: number; count: number }): string =>
  `${c.split}:${c.start}:${c.count}`;

/** The chunks a run has committed, keyed `split:start:count`, with the digest of the rows each wrote. */
export async function committedChunks(db: Db, runId: string): Promise<Map<string, string | null>> {
  const rows = await db.select().from(schema.runChunks).where(eq(schema.runChunks.runId, runId));
  return new Map(rows.map((r) => [chunkKey(r), r.digest]));
}

export async function forgetChunks(db: Db, runId: string): Promise<void> {
  await db.delete(schema.runChunks).where(eq(schema.runChunks.runId, runId));
}
/**
 * Pin an archive's MD5 to the run the first time the run sees the whole
 * archive, never overwriting one pinned before (by an earlier pass, attempt or
 * resume). Returns the MD5 the run holds for the file afterwards: if it is not
 * `md5`, the source now serves other bytes than the run already used.
 * Undefined if the run is no longer extracting or loading.
 */
export async function pinChecksum(db: Db, id: string, file: string, md5: string): Promise<string | undefined> {
  const path = `$."${file.replace(/["\\]/g, "")}"`;
  const [row] = await db.all<{ pinned: string | null }>(sql`UPDATE runs
SET checksums = CASE WHEN json_extract(coalesce(checksums, '{}'), ${path}) IS NULL
    THEN json_set(coalesce(checksums, '{}'), ${path}, ${md5}) ELSE checksums END,
  updated_at = ${now()}
WHERE id = ${id} AND status IN ('extracting', 'loading')
RETURNING json_extract(checksums, ${path}) AS pinned`);
  return row?.pinned ?? undefined;
}
