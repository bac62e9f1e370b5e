/**
 * Loading a chunk into D1: statements built within D1's limits (pure), and the
 * one batch that writes a chunk's rows, its ledger entry and the run's progress
 * in a single transaction — so a redelivered message rewrites the same rows and
 * never double-counts. Runs load into the shadow table `images_next`, never into
 * `images` (see migrations/0002_shadow_load.sql and swapStatements).
 */
import { isSplit, type Split } from "../datasets";
import { EtlError } from "../errors";
import { pixelsToPackedHex, ZERO_PIXEL, ZERO_PIXEL_HEX } from "./transform";

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

/** Where buildInsertStatements writes: `images` directly, or run `runId`'s shadow rows. */
export type InsertTarget = { readonly into: "images" } | { readonly into: "images_next"; readonly runId: string };

/**
 * The most rows one statement can carry: one bound parameter per row (its
 * pixels as hex), plus the run id when writing to the shadow table.
 */
export const maxRowsPerStatement = (target: InsertTarget): number =>
  D1_LIMITS.boundParameters - (target.into === "images_next" ? 1 : 0);

export interface ChunkRows {
  readonly split: Split;
  readonly start: number;
  /** Labels as digits, one per image. */
  readonly labels: string;
  /** count × pixelsPerImage raw uint8 pixels, as stored in the IDX file. */
  readonly pixels: Uint8Array;
  readonly pixelsPerImage: number;
}

/**
 * Multi-row inserts: `VALUES ('train', 1000, 9, ?1), …` with each image's
 * float32 bytes bound as packed hex (a zero pixel as one character, see
 * transform.ts) and decoded by `unhex(replace(…))` in SQL. Measured against
 * the alternatives (bench/alternatives.md): binding a Uint8Array is ~8× slower
 * through the D1 binding, one JSON parameter walked by `json_each` spends ~2×
 * longer inside SQLite than these per-row parameters, and plain hex sends ~44%
 * more text across. Split, index and label are literals: they come from a
 * validated enum and validated integers, and keeping them out of the
 * parameters leaves the 100 for pixels. Rows are spread evenly over the fewest
 * statements. ON CONFLICT makes a rewrite idempotent; shadow writes happen
 * only while the run is loading, checked in the same transaction, so a late
 * duplicate of a finished run writes nothing.
 */
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
  if (!isSplit(split) || !/^[0-9]*$/.test(labels) || !Number.isSafeInteger(start) || start < 0) {
    throw new EtlError(`chunk ${split} ${start}: invalid split, start or labels`);
  }
  const limit = Math.min(rowsPerStatement, maxRowsPerStatement(target));
  if (limit < 1) throw new RangeError(`rows per statement must be at least 1, got ${rowsPerStatement}`);
  const statementCount = Math.ceil(count / limit);
  const perStatement = Math.ceil(count / statementCount);

  // Every image's packed hex in one string; rows are slices of it.
  const hex = pixelsToPackedHex(pixels, pixelsPerImage);
  const decode = `unhex(replace(column4, '${ZERO_PIXEL}', '${ZERO_PIXEL_HEX}'))`;

  const shadow = target.into === "images_next";
  const first = shadow ? 2 : 1; // ?1 is the run id for the shadow table
  const statements: Statement[] = [];
  for (let from = 0; from < count; from += perStatement) {
    const n = Math.min(perStatement, count - from);
    const values: string[] = [];
    const params: (string | number)[] = shadow ? [target.runId] : [];
    for (let i = 0; i < n; i++) {
      const k = from + i;
      values.push(`('${split}',${start + k},${labels.charCodeAt(k) - 48},?${first + i})`);
      params.push(hex.text.slice(hex.starts[k], hex.starts[k + 1]));
    }
    const sql = shadow
      ? `INSERT INTO images_next (split, idx, label, pixels)
SELECT column1, column2, column3, ${decode} FROM (VALUES ${values.join(",")})
WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND status = 'loading')
ON CONFLICT (split, idx) DO UPDATE SET label = excluded.label, pixels = excluded.pixels`
      : `INSERT INTO images (split, idx, label, pixels)
SELECT column1, column2, column3, ${decode} FROM (VALUES ${values.join(",")}) WHERE true
ON CONFLICT (split, idx) DO UPDATE SET label = excluded.label, pixels = excluded.pixels`;
    statements.push({ sql, params });
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
WHERE id = ?1 AND status = 'loading'`;

/**
 * The run as the transaction leaves it: whether it was loading (else the guarded
 * writes above wrote nothing) and whether its ledger is now complete — so a
 * consumer learns both without another round trip.
 */
export const RUN_STATE_SQL = `SELECT status, chunks_total AS total,
  (SELECT COUNT(*) FROM run_chunks WHERE run_id = ?1) AS committed
FROM runs WHERE id = ?1`;

export interface RunState {
  readonly status: string;
  readonly total: number | null;
  readonly committed: number;
}

/**
 * One transaction for several chunks of a run: each chunk's rows and ledger
 * entry, then the run's progress and its state. Fewer, larger transactions:
 * each costs a commit, which local D1 showed as a fixed ~4 ms.
 */
export function chunksStatements(
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Statement[] {
  return [
    ...chunks.flatMap((rows) => [
      ...buildInsertStatements(rows, rowsPerStatement, { into: "images_next", runId }),
      { sql: RECORD_CHUNK_SQL, params: [runId, rows.split, rows.start, rows.labels.length] },
    ]),
    { sql: UPDATE_PROGRESS_SQL, params: [runId, now] },
    { sql: RUN_STATE_SQL, params: [runId] },
  ];
}

/** Load chunks of one run in one batch; the run's state after it, or undefined if there is no such run. */
export async function loadChunks(
  db: D1Database,
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Promise<RunState | undefined> {
  const results = await runBatch(db, chunksStatements(runId, chunks, rowsPerStatement, now));
  return results.at(-1)?.results[0] as RunState | undefined;
}

/** Run statements as one D1 batch: D1 executes a batch as a single transaction. */
export async function runBatch(db: D1Database, statements: readonly Statement[]): Promise<D1Result[]> {
  return db.batch(statements.map((s) => db.prepare(s.sql).bind(...s.params)));
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
    // The new dataset's class counts, so /stats reads 20 rows instead of scanning it.
    { sql: "DELETE FROM class_counts", params: [] },
    {
      sql: "INSERT INTO class_counts (split, label, n) SELECT split, label, COUNT(*) FROM images GROUP BY split, label",
      params: [],
    },
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
