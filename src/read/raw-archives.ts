/**
 * The raw archives a run verified, kept in R2 byte for byte
 * (pipeline/raw-archives.ts writes them): where each lies in the bucket, and
 * which ones a dataset version has, by the MD5s its run pinned. A kept
 * object exists only once its archive passed every check and its MD5 was
 * pinned, so the pinned MD5 is the object's.
 */

/**
 * The bucket prefix of every kept archive. It starts with "_", which no
 * dataset name does, so no dataset's export prefix ("<name>/") covers it.
 */
export const RAW_PREFIX = "_raw/";

/** An archive's file name as the raw routes name it: a zip member's without its folder ("gzip/…"). */
export const rawFileName = (file: string): string => file.replace(/^.*\//, "");

/** The kept copy of `file` as run `runId` of `dataset` read it. */
export const rawKey = (dataset: string, runId: string, file: string): string =>
  `${RAW_PREFIX}${dataset}/${runId}/${rawFileName(file)}`;

/** Every kept archive of a dataset, and of one run of it. */
export const rawDatasetPrefix = (dataset: string): string => `${RAW_PREFIX}${dataset}/`;
export const rawRunPrefix = (dataset: string, runId: string): string => `${RAW_PREFIX}${dataset}/${runId}/`;

/** One archive of a dataset version: its file name, as served, and the MD5 its run pinned. */
export interface RawArchive {
  readonly file: string;
  readonly md5: string;
}

/**
 * The archives run `version` read whole and pinned, by served file name
 * (an EMNIST run's are the zip members it used). Empty if the run pinned none.
 */
export async function readRawArchives(db: D1Database, version: string): Promise<RawArchive[]> {
  const row = await db
    .prepare("SELECT checksums FROM runs WHERE id = ?1")
    .bind(version)
    .first<{ checksums: string | null }>();
  const pinned = row?.checksums ? (JSON.parse(row.checksums) as Record<string, string>) : {};
  return Object.entries(pinned)
    .map(([file, md5]) => ({ file: rawFileName(file), md5 }))
    .sort((a, b) => a.file.localeCompare(b.file));
}

/** The runs of `dataset` whose kept archives may still be served: its current version, and its active runs. */
export async function readKeptRuns(db: D1Database, dataset: string): Promise<string[]> {
  const { results } = await db
    .prepare(
      `SELECT run_id AS id FROM datasets WHERE name = ?1 AND run_id IS NOT NULL
       UNION SELECT id FROM runs WHERE dataset = ?1 AND status IN ('queued', 'extracting', 'loading')`,
    )
    .bind(dataset)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}
