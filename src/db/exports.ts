/**
 * The record of which dataset version has its .npy files in R2. Written only
 * once every file of that version that one R2 put can take is stored (a larger
 * one is left to D1), and only while that version is
 * still the dataset's: a swap that overtook the export leaves no record, so
 * readers never trust files of a version that is not current.
 */
import { sql } from "drizzle-orm";
import type { Db } from "./database";

/**
 * Record `version` of `dataset` as exported (`bytes`: its files stored), if it
 * is still the dataset's current version. True if it was recorded.
 */
export async function recordExports(
  db: Db,
  dataset: string,
  version: string,
  bytes: number,
  at: string,
): Promise<boolean> {
  const result = await db.run(sql`INSERT INTO dataset_exports (dataset, version, bytes, exported_at)
    SELECT ${dataset}, ${version}, ${bytes}, ${at}
    WHERE EXISTS (SELECT 1 FROM datasets WHERE name = ${dataset} AND run_id = ${version})
    ON CONFLICT (dataset) DO UPDATE SET version = excluded.version, bytes = excluded.bytes,
      exported_at = excluded.exported_at`);
  return result.meta.changes > 0;
}
