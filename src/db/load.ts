/**
 * Loading a chunk into D1: statements built within D1's limits (pure), and the
 * one batch that writes a chunk's rows, its ledger entry and the run's progress
 * in a single transaction — so a redelivered message rewrites the same rows and
 * never double-counts. Runs load into the shadow table `images_next`, never into
 * `images` (see migrations/0002_shadow_load.sql and swapStatements).
 */
import { isSplit, type Split } from "../core/datasets";
import { EtlError } from "../core/errors";
import { isChunkDigest } from "../codec/digest";
import { pixelsToPackedHex, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../codec/transform";

/** D1's documented limits (developers.cloudflare.com/d1/platform/limits). */
export const D1_LIMITS = {
  boundParameters: 100,
  sqlBytes: 100_000,
  /** Largest string or BLOB value, bound parameters included. */
  valueBytes: 2_000_000,
} as const;

export interface Statement {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}

/** The most rows one statement can carry: one bound parameter per row (its pixels as hex), plus the run id. */
export const MAX_ROWS_PER_STATEMENT = D1_LIMITS.boundParameters - 1;

export interface ChunkRows {
  readonly split: Split;
  readonly start: number;
  /** Labels as digits, one per image. */
  readonly labels: string;
  /** count × pixelsPerImage raw uint8 pixels, as stored in the IDX file. */
  readonly pixels: Uint8Array;
  readonly pixelsPerImage: number;
  /** chunkDigest(labels, pixels): the version of these images this delivery writes. */
  readonly digest: string;
}

/**
 * Multi-row inserts into run `runId`'s shadow rows: `VALUES ('train', 1000,
 * 9, ?2), …` with each image's float32 bytes bound as packed hex (a zero pixel
 * as one character, see transform.ts) and decoded by `unhex(replace(…))` in
 * SQL. Measured against the alternatives (bench/alternatives.md): binding a
 * Uint8Array is much slower through the D1 binding, one JSON parameter walked
 * by `json_each` spends longer inside SQLite than these per-row parameters,
 * and plain hex sends much more text across. Split, index, label
 * and digest are literals: they come from a validated enum, validated integers
 * and hex, and keeping them out of the parameters leaves the 100 for pixels.
 * Rows are spread evenly over the fewest statements.
 *
 * Rows are written only while the run is loading and only if the chunk's
 * ledger entry (RECORD_CHUNK_SQL, earlier in the same transaction) carries this
 * very digest: a late duplicate of a finished run writes nothing, and bytes of
 * another version never overwrite or join the rows the ledger vouches for.
 */
export function buildInsertStatements(runId: string, rows: ChunkRows, rowsPerStatement: number): Statement[] {
  const { split, start, labels, pixels, pixelsPerImage, digest } = rows;
  const count = labels.length;
  if (pixels.length !== count * pixelsPerImage) {
    throw new EtlError(
      `chunk ${split} ${start}: ${pixels.length} pixel bytes for ${count} images of ${pixelsPerImage}`,
    );
  }
  if (!isSplit(split) || !/^[0-9]*$/.test(labels) || !Number.isSafeInteger(start) || start < 0) {
    throw new EtlError(`chunk ${split} ${start}: invalid split, start or labels`);
  }
  if (!isChunkDigest(digest)) throw new EtlError(`chunk ${split} ${start}: invalid digest`);
  const limit = Math.min(rowsPerStatement, MAX_ROWS_PER_STATEMENT);
  if (limit < 1) throw new RangeError(`rows per statement must be at least 1, got ${rowsPerStatement}`);
  const statementCount = Math.ceil(count / limit);
  const perStatement = Math.ceil(count / statementCount);

  // Every image's packed hex in one string; rows are slices of it.
  const hex = pixelsToPackedHex(pixels, pixelsPerImage);
  const decode = `unhex(replace(column4, '${ZERO_PIXEL}', '${ZERO_PIXEL_HEX}'))`;

  const statements: Statement[] = [];
  for (let from = 0; from < count; from += perStatement) {
    const n = Math.min(perStatement, count - from);
    const values: string[] = [];
    const params: (string | number)[] = [runId];
    for (let i = 0; i < n; i++) {
      const k = from + i;
      values.push(`('${split}',${start + k},${labels.charCodeAt(k) - 48},?${2 + i})`);
      params.push(hex.text.slice(hex.starts[k], hex.starts[k + 1]));
    }
    const sql = `INSERT INTO images_next (split, idx, label, pixels)
SELECT column1, column2, column3, ${decode} FROM (VALUES ${values.join(",")})
WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND status = 'loading')
  AND EXISTS (SELECT 1 FROM run_chunks WHERE run_id = ?1 AND split = '${split}' AND start = ${start} AND digest = '${digest}')
ON CONFLICT (split, idx) DO UPDATE SET label = excluded.label, pixels = excluded.pixels`;
    statements.push({ sql, params });
  }
  return statements;
}

/**
 * Recorded only while the run is loading, like its rows, and in the same
 * transaction: the ledger never claims rows that were not written. The first
 * digest recorded for a chunk stays; a delivery with another one finds it in
 * LEDGER_SQL's answer and writes no rows.
 */
export const RECORD_CHUNK_SQL = `INSERT INTO run_chunks (run_id, split, start, count, digest)
SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND status = 'loading')
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

/** The digest the ledger holds for a chunk of the delivery, as the transaction leaves it. */
export interface LedgerEntry {
  readonly split: Split;
  readonly start: number;
  readonly digest: string | null;
}

/** The ledger entries of a delivery's chunks: split and start are validated literals (buildInsertStatements). */
const ledgerStatement = (runId: string, chunks: readonly ChunkRows[]): Statement => ({
  sql: `SELECT split, start, digest FROM run_chunks WHERE run_id = ?1 AND (${chunks
    .map((c) => `(split = '${c.split}' AND start = ${c.start})`)
    .join(" OR ")})`,
  params: [runId],
});

/**
 * One transaction for several chunks of a run: each chunk's rows and ledger
 * entry, then the run's progress and its state. Fewer, larger transactions:
 * each costs a commit, a fixed cost per transaction.
 */
export function chunksStatements(
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Statement[] {
  return [
    ...chunks.flatMap((rows) => [
      { sql: RECORD_CHUNK_SQL, params: [runId, rows.split, rows.start, rows.labels.length, rows.digest] },
      ...buildInsertStatements(runId, rows, rowsPerStatement),
    ]),
    { sql: UPDATE_PROGRESS_SQL, params: [runId, now] },
    { sql: RUN_STATE_SQL, params: [runId] },
    ledgerStatement(runId, chunks),
  ];
}

export interface LoadResult {
  /** The run after the transaction, or undefined if there is no such run. */
  readonly state: RunState | undefined;
  /** The ledger's entries for the delivered chunks; an entry whose digest differs means no rows were written for it. */
  readonly ledger: readonly LedgerEntry[];
}

/** Load chunks of one run in one batch. */
export async function loadChunks(
  db: D1Database,
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Promise<LoadResult> {
  const results = await runBatch(db, chunksStatements(runId, chunks, rowsPerStatement, now));
  return {
    state: results.at(-2)?.results[0] as RunState | undefined,
    ledger: (results.at(-1)?.results ?? []) as LedgerEntry[],
  };
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
      sql: `UPDATE runs SET status = 'complete', error = NULL, retrying = NULL, updated_at = ?2, finished_at = ?2 WHERE id = ?1`,
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

/**
 * queued → extracting, emptying the shadow table for the run, as one batch.
 * Whatever an earlier run left there must not mix into this one. DROP + CREATE
 * rather than DELETE, for the billing reason given in swapStatements; and since
 * DDL cannot be made conditional, the guard row in shadow_claims aborts the
 * whole batch (DROP included) unless the run is extracting after the UPDATE —
 * so a job redelivered while its run already loads drops nothing.
 */
export function claimShadowStatements(runId: string, now: string): Statement[] {
  return [
    {
      sql: "UPDATE runs SET status = 'extracting', updated_at = ?2 WHERE id = ?1 AND status IN ('queued', 'extracting')",
      params: [runId, now],
    },
    {
      sql: `INSERT INTO shadow_claims (run_id, run_status, claimed_at)
SELECT ?1, (SELECT status FROM runs WHERE id = ?1), ?2 WHERE true
ON CONFLICT (run_id) DO UPDATE SET run_status = excluded.run_status, claimed_at = excluded.claimed_at`,
      params: [runId, now],
    },
    { sql: "DROP TABLE images_next", params: [] },
    { sql: CREATE_SHADOW_SQL, params: [] },
  ];
}
