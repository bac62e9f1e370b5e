/**
 * Loading a chunk into D1: statements built within D1's limits (pure), and the
 * one batch that writes a chunk's rows, its ledger entry and the run's progress
 * in a single transaction — so a redelivered message rewrites the same rows and
 * never double-counts. Runs load into the shadow table `images_next`, never into
 * `images` (see migrations/0002_shadow_load.sql and swapStatements).
 */
import type { Split } from "../datasets";
import { EtlError } from "../errors";
import { BYTES_PER_VALUE, writePixelsHex } from "./transform";

/** D1's documented limits (developers.cloudflare.com/d1/platform/limits). */
export const D1_LIMITS = {
  boundParameters: 100,
  sqlBytes: 100_000,
  /** Largest string or BLOB value, bound parameters included. */
  valueBytes: 2_000_000,
  /** Queries per Worker invocation on the free plan (1,000 on paid). */
  queriesPerInvocation: 50,
} as const;

export interface Statement {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}

/**
 * One statement inserts many rows from a single JSON parameter: a JSON array of
 * hex strings, each one image's float32 LE bytes, decoded by `unhex()` in SQL.
 * Labels travel as a digit string. ON CONFLICT makes the write idempotent.
 */
export const INSERT_IMAGES_SQL = `INSERT INTO images (split, idx, label, pixels)
SELECT ?1, ?2 + j.key, unicode(substr(?3, j.key + 1, 1)) - 48, unhex(j.value)
FROM json_each(?4) AS j WHERE true
ON CONFLICT (split, idx) DO UPDATE SET label = excluded.label, pixels = excluded.pixels`;

/**
 * The same insert into the shadow table, written only while run ?5 is loading:
 * a late duplicate of a chunk whose run already completed (and swapped) or
 * failed writes nothing, checked inside the chunk's own transaction.
 */
export const INSERT_SHADOW_SQL = `INSERT INTO images_next (split, idx, label, pixels)
SELECT ?1, ?2 + j.key, unicode(substr(?3, j.key + 1, 1)) - 48, unhex(j.value)
FROM json_each(?4) AS j WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?5 AND status = 'loading')
ON CONFLICT (split, idx) DO UPDATE SET label = excluded.label, pixels = excluded.pixels`;

/** Where buildInsertStatements writes: `images` directly, or run `runId`'s shadow rows. */
export type InsertTarget = { readonly into: "images" } | { readonly into: "images_next"; readonly runId: string };

/** Hex characters plus the JSON quotes and comma around each image. */
const jsonBytesPerImage = (pixelsPerImage: number): number => pixelsPerImage * BYTES_PER_VALUE * 2 + 3;

/** The most rows one statement can carry without its JSON parameter exceeding D1's value limit. */
export const maxRowsPerStatement = (pixelsPerImage: number): number =>
  Math.floor((D1_LIMITS.valueBytes - 2) / jsonBytesPerImage(pixelsPerImage));

export interface ChunkRows {
  readonly split: Split;
  readonly start: number;
  /** Labels as digits, one per image. */
  readonly labels: string;
  /** count × pixelsPerImage raw uint8 pixels, as stored in the IDX file. */
  readonly pixels: Uint8Array;
  readonly pixelsPerImage: number;
}

export function buildInsertStatements(
  rows: ChunkRows,
  rowsPerStatement: number,
  target: InsertTarget = { into: "images" },
): Statement[] {
  const { split, start, labels, pixels, pixelsPerImage } = rows;
  const count = labels.length;
  if (pixels.length !== count * pixelsPerImage) {
    throw new EtlError(
      `chunk ${split} ${start}: ${pixels.length} pixel bytes for ${count} images of ${pixelsPerImage}`,
    );
  }
  const perStatement = Math.min(rowsPerStatement, maxRowsPerStatement(pixelsPerImage));
  if (perStatement < 1) throw new RangeError(`rows per statement must be at least 1, got ${rowsPerStatement}`);
  const decoder = new TextDecoder();
  const statements: Statement[] = [];
  for (let first = 0; first < count; first += perStatement) {
    const n = Math.min(perStatement, count - first);
    const json = new Uint8Array(2 + n * jsonBytesPerImage(pixelsPerImage) - 1);
    let at = 0;
    json[at++] = 0x5b; // [
    for (let i = 0; i < n; i++) {
      if (i > 0) json[at++] = 0x2c; // ,
      json[at++] = 0x22; // "
      const offset = (first + i) * pixelsPerImage;
      at = writePixelsHex(pixels.subarray(offset, offset + pixelsPerImage), json, at);
      json[at++] = 0x22;
    }
    json[at++] = 0x5d; // ]
    const params = [split, start + first, labels.slice(first, first + n), decoder.decode(json.subarray(0, at))];
    statements.push(
      target.into === "images"
        ? { sql: INSERT_IMAGES_SQL, params }
        : { sql: INSERT_SHADOW_SQL, params: [...params, target.runId] },
    );
  }
  return statements;
}

/** Recorded only while the run is loading, like its rows: the ledger never claims rows that were not written. */
export const RECORD_CHUNK_SQL = `INSERT INTO run_chunks (run_id, split, start, count)
SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND status = 'loading')
ON CONFLICT (run_id, split, start) DO NOTHING`;

/** Progress is derived from the ledger inside the same transaction, so it cannot drift. */
export const UPDATE_PROGRESS_SQL = `UPDATE runs SET
  train_loaded = (SELECT COALESCE(SUM(count), 0) FROM run_chunks WHERE run_id = ?1 AND split = 'train'),
  test_loaded = (SELECT COALESCE(SUM(count), 0) FROM run_chunks WHERE run_id = ?1 AND split = 'test'),
  updated_at = ?2
WHERE id = ?1`;

export function chunkStatements(runId: string, rows: ChunkRows, rowsPerStatement: number, now: string): Statement[] {
  return [
    ...buildInsertStatements(rows, rowsPerStatement, { into: "images_next", runId }),
    { sql: RECORD_CHUNK_SQL, params: [runId, rows.split, rows.start, rows.labels.length] },
    { sql: UPDATE_PROGRESS_SQL, params: [runId, now] },
  ];
}

/** Run statements as one D1 batch: D1 executes a batch as a single transaction. */
export async function runBatch(db: D1Database, statements: readonly Statement[]): Promise<void> {
  await db.batch(statements.map((s) => db.prepare(s.sql).bind(...s.params)));
}

/**
 * Make run `runId`'s shadow rows the dataset, as one batch (one transaction).
 * The first statement is the guard: its row in dataset_swaps fails the CHECK
 * unless the run is loading and D1 counts exactly the expected rows in the
 * shadow, and fails the primary key if this run already swapped — either way
 * the whole batch rolls back and `images` is untouched. Then the run is marked
 * complete, the shadow becomes `images`, the old dataset is dropped and an
 * empty shadow is created, so storage stays at one copy between runs.
 */
export function swapStatements(runId: string, expected: Readonly<Record<Split, number>>, now: string): Statement[] {
  return [
    {
      sql: `INSERT INTO dataset_swaps (run_id, run_status, train_rows, test_rows, train_expected, test_expected, swapped_at)
SELECT ?1, (SELECT status FROM runs WHERE id = ?1),
  (SELECT COUNT(*) FROM images_next WHERE split = 'train'), (SELECT COUNT(*) FROM images_next WHERE split = 'test'),
  ?2, ?3, ?4`,
      params: [runId, expected.train, expected.test, now],
    },
    {
      sql: `UPDATE runs SET status = 'complete', error = NULL, updated_at = ?2, finished_at = ?2 WHERE id = ?1`,
      params: [runId, now],
    },
    { sql: "ALTER TABLE images RENAME TO images_prev", params: [] },
    { sql: "ALTER TABLE images_next RENAME TO images", params: [] },
    // DROP + CREATE, not DELETE: D1 bills every deleted row as a row written,
    // which would double a full load's cost to ~140k rows (over the free
    // plan's 100k a day); dropping a table frees its pages without that.
    { sql: "DROP TABLE images_prev", params: [] },
    { sql: CREATE_SHADOW_SQL, params: [] },
  ];
}

/**
 * The shadow table's definition, identical to migrations/0002_shadow_load.sql
 * (test/config.test.ts compares them): the swap recreates it empty.
 */
export const CREATE_SHADOW_SQL = `CREATE TABLE images_next (
  split  TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  idx    INTEGER NOT NULL CHECK (idx >= 0),
  label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
  pixels BLOB    NOT NULL CHECK (length(pixels) = 3136),
  PRIMARY KEY (split, idx)
) WITHOUT ROWID`;

export const CLEAR_SHADOW_SQL = "DELETE FROM images_next";
