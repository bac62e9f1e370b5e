/**
 * The record of a dataset version's exports: which version has its files in
 * R2 (`dataset_exports`), and each file's size and SHA-256 (`export_files`).
 * Written only while that version is still the dataset's: a swap that
 * overtook the export job leaves no record, so readers never trust files or
 * checksums of a version that is not current.
 */
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "./database";
import { exportFiles } from "./schema";

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

export interface FileRecord {
  /** The file's name as downloaded (read/export-files.ts `fileName`). */
  readonly file: string;
  readonly bytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

/** Record the files' sizes and SHA-256s for `version`, in one statement, if it is still current. */
export async function recordFiles(
  db: Db,
  dataset: string,
  version: string,
  files: readonly FileRecord[],
): Promise<boolean> {
  if (files.length === 0) return true;
  const result = await db.run(sql`INSERT INTO export_files (dataset, file, version, bytes, sha256)
    SELECT ${dataset}, value ->> '$.file', ${version}, value ->> '$.bytes', value ->> '$.sha256'
    FROM json_each(${JSON.stringify(files)})
    WHERE EXISTS (SELECT 1 FROM datasets WHERE name = ${dataset} AND run_id = ${version})
    ON CONFLICT (dataset, file) DO UPDATE SET version = excluded.version, bytes = excluded.bytes,
      sha256 = excluded.sha256`);
  return result.meta.changes === files.length;
}

/** The files recorded for `version` of `dataset`. */
export async function readFileRecords(db: Db, dataset: string, version: string): Promise<FileRecord[]> {
  return db
    .select({ file: exportFiles.file, bytes: exportFiles.bytes, sha256: exportFiles.sha256 })
    .from(exportFiles)
    .where(and(eq(exportFiles.dataset, dataset), eq(exportFiles.version, version)));
}
