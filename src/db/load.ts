/**
 * Loading a chunk into D1: statements built within D1's limits (pure), and the
 * one batch that writes a chunk's rows, its ledger entry and the run's progress
 * in a single transaction — so a redelivered message rewrites the same rows and
 * never double-counts. Runs load into their dataset's shadow tables, never into
 * the tables `images` shows (see tables.ts and swapStatements).
 */
import { isDatasetName, isSplit, SPLITS, type Split } from "../core/datasets";
import { EtlError } from "../core/errors";
import { isChunkDigest } from "../codec/digest";
import { pixelsToPackedHex, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../codec/transform";
import { runTransaction, transactionStatements, type Statement, type Transaction } from "./batch";
import { classifyD1Error } from "./d1-errors";
import { largeImageStatements, MAX_PIXELS_PER_PARAM } from "./large-rows";
import { createImageTableSql, liveTable, shadowTable } from "./tables";
import type { Provenance } from "./provenance";
import { viewGuard, viewStatements, type ViewPlan } from "./view";

/** D1's documented limits (developers.cloudflare.com/d1/platform/limits). */
export const D1_LIMITS = {
  boundParameters: 100,
  sqlBytes: 100_000,
  /** Largest string or BLOB value, bound parameters included. */
  valueBytes: 2_000_000,
} as const;

/** The most rows one statement can carry: one bound parameter per row (its pixels as hex), plus the run id. */
export const MAX_ROWS_PER_STATEMENT = D1_LIMITS.boundParameters - 1;

/** A chunk's rows as the consumer writes them: what its message carries, and the digest of its bytes. */
export interface ChunkRows {
  /** The run's dataset: its shadow table is where the rows go. */
  readonly dataset: string;
  readonly split: Split;
  readonly start: number;
  /** Labels, one byte per image. */
  readonly labels: Uint8Array;
  /** count × pixelsPerImage raw uint8 pixels, as stored in the IDX file. */
  readonly pixels: Uint8Array;
  readonly pixelsPerImage: number;
  /** chunkDigest(labels, pixels): the version of these images this delivery writes. */
  readonly digest: string;
}

/**
 * Multi-row inserts into run `runId`'s shadow table: `VALUES (1000, 9, ?2), …` with each image's float32 bytes bound as packed hex (a zero pixel
 * as one character, see transform.ts) and decoded by `unhex(replace(…))` in
 * SQL. Measured against the alternatives (bench/decisions.md): binding a
 * Uint8Array is much slower through the D1 binding, one JSON parameter walked
 * by `json_each` spends longer inside SQLite than these per-row parameters,
 * and plain hex sends much more text across. Dataset, split, index, label
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
  const { dataset, split, start, labels, pixels, pixelsPerImage, digest } = rows;
  const count = labels.length;
  if (pixels.length !== count * pixelsPerImage) {
    throw new EtlError(
      `chunk ${split} ${start}: ${pixels.length} pixel bytes for ${count} images of ${pixelsPerImage}`,
    );
  }
  if (!isDatasetName(dataset) || !isSplit(split) || !Number.isSafeInteger(start) || start < 0) {
    throw new EtlError(`chunk ${split} ${start}: invalid dataset, split or start`);
  }
  if (!isChunkDigest(digest)) throw new EtlError(`chunk ${split} ${start}: invalid digest`);
  const tail = `WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND status = 'loading' AND dataset = '${dataset}')
  AND EXISTS (SELECT 1 FROM run_chunks WHERE run_id = ?1 AND split = '${split}' AND start = ${start} AND digest = '${digest}')
ON CONFLICT (idx) DO UPDATE SET label = excluded.label, pixels = excluded.pixels`;
  if (pixelsPerImage > MAX_PIXELS_PER_PARAM)
    return largeImageStatements(shadowTable(dataset, split), runId, rows, tail);
  const limit = Math.min(rowsPerStatement, MAX_ROWS_PER_STATEMENT);
  if (limit < 1) throw new RangeError(`rows per statement must be at least 1, got ${rowsPerStatement}`);
  const statementCount = Math.ceil(count / limit);
  const perStatement = Math.ceil(count / statementCount);

  // Every image's packed hex in one string; rows are slices of it.
  const hex = pixelsToPackedHex(pixels, pixelsPerImage);
  const decode = `unhex(replace(column3, '${ZERO_PIXEL}', '${ZERO_PIXEL_HEX}'))`;

  const statements: Statement[] = [];
  for (let from = 0; from < count; from += perStatement) {
    const n = Math.min(perStatement, count - from);
    const values: string[] = [];
    const params: (string | number)[] = [runId];
    for (let i = 0; i < n; i++) {
      const k = from + i;
      values.push(`(${start + k},${labels[k]!},?${2 + i})`);
      params.push(hex.text.slice(hex.starts[k], hex.starts[k + 1]));
    }
    const sql = `INSERT INTO ${shadowTable(dataset, split)} (idx, label, pixels)
SELECT column1, column2, ${decode} FROM (VALUES ${values.join(",")})
${tail}`;
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

/** What a chunk load reads back: the run's state and the ledger's entries for the delivered chunks. */
export type LoadRead = "state" | "ledger";

/** The end of a chunk load: the run's progress, then its state and the chunks' ledger entries. */
export function runStateTransaction(runId: string, chunks: readonly ChunkRows[], now: string): Transaction<LoadRead> {
  return {
    writes: [{ sql: UPDATE_PROGRESS_SQL, params: [runId, now] }],
    reads: { state: { sql: RUN_STATE_SQL, params: [runId] }, ledger: ledgerStatement(runId, chunks) },
  };
}

/**
 * One transaction for several chunks of a run: each chunk's ledger entry and
 * rows, then runStateTransaction's. Fewer, larger transactions: each costs a
 * commit, a fixed cost per transaction.
 */
export function loadTransaction(
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Transaction<LoadRead> {
  const end = runStateTransaction(runId, chunks, now);
  return {
    writes: [
      ...chunks.flatMap((rows) => [
        { sql: RECORD_CHUNK_SQL, params: [runId, rows.split, rows.start, rows.labels.length, rows.digest] },
        ...buildInsertStatements(runId, rows, rowsPerStatement),
      ]),
      ...end.writes,
    ],
    reads: end.reads,
  };
}

/** loadTransaction's statements, in order. */
export const chunksStatements = (
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Statement[] => transactionStatements(loadTransaction(runId, chunks, rowsPerStatement, now));

export interface LoadResult {
  /** The run after the transaction, or undefined if there is no such run. */
  readonly state: RunState | undefined;
  /** The ledger's entries for the delivered chunks; an entry whose digest differs means no rows were written for it. */
  readonly ledger: readonly LedgerEntry[];
}

const runState = (read: Record<LoadRead, D1Result>) => read.state.results[0] as RunState | undefined;

/** Load chunks of one run in one batch. */
export async function loadChunks(
  db: D1Database,
  runId: string,
  chunks: readonly ChunkRows[],
  rowsPerStatement: number,
  now: string,
): Promise<LoadResult> {
  let read: Record<LoadRead, D1Result>;
  try {
    read = await runTransaction(db, loadTransaction(runId, chunks, rowsPerStatement, now));
  } catch (err) {
    // The shadow tables go when the run swaps (or a later run of the dataset claims them):
    // a late delivery has nothing to write, which the run's state says.
    if (classifyD1Error(err) !== "missing-table") throw err;
    read = await runTransaction(db, runStateTransaction(runId, chunks, now));
    if (runState(read)?.status === "loading") throw err;
  }
  return { state: runState(read), ledger: read.ledger.results as LedgerEntry[] };
}

/** The run a swap or a claim is for: its id and its dataset. */
export interface RunRef {
  readonly id: string;
  readonly dataset: string;
}

export interface SwapPlan {
  readonly expected: Readonly<Record<Split, number>>;
  /** The other datasets the catalog lists (read before the swap). */
  readonly others: readonly string[];
  /** The other datasets' tables that exist (read before the swap): the view lists them and this dataset's. */
  readonly view: ViewPlan;
  /** Class names by label, recorded in `classes`. */
  readonly classNames: readonly string[];
  /** Where the rows come from, recorded in the catalog. */
  readonly provenance: Provenance;
}

/**
 * Make run `run`'s shadow tables its dataset's, as one batch (one transaction).
 * The first statement is the guard: its row in dataset_swaps fails the CHECK
 * unless the run is loading, D1 counts exactly the expected rows in the
 * shadow tables, and the catalog still holds as many other datasets as the
 * view about to be created lists (a dataset that joined meanwhile would
 * otherwise drop out of `images`); it fails the primary key if this run
 * already swapped. The second, the view's guard (view.ts), aborts it unless
 * the other datasets' tables the view names are exactly those that exist.
 * Either way the whole batch rolls back and every table is untouched. Then
 * the run is marked complete, the catalog records it and its provenance, the
 * shadows replace the dataset's tables (the old ones are dropped, so storage
 * returns to one copy), the view is recreated over the tables that exist
 * (which repairs it if a table was dropped by hand), and the dataset's
 * classes and counts are recorded.
 */
export function swapStatements(run: RunRef, plan: SwapPlan, now: string): Statement[] {
  const { dataset } = run;
  const others = plan.others.filter((d) => d !== dataset);
  const [train, test] = [shadowTable(dataset, "train"), shadowTable(dataset, "test")];
  const view = viewStatements(run.id, plan.view, true);
  return [
    {
      sql: `INSERT INTO dataset_swaps (run_id, dataset, run_status, train_rows, test_rows, train_expected, test_expected, catalog_size, catalog_read, swapped_at)
SELECT ?1, ?2, (SELECT status FROM runs WHERE id = ?1 AND dataset = ?2),
  (SELECT COUNT(*) FROM ${train}), (SELECT COUNT(*) FROM ${test}),
  ?3, ?4, (SELECT COUNT(*) FROM datasets WHERE name <> ?2), ?5, ?6`,
      params: [run.id, dataset, plan.expected.train, plan.expected.test, others.length, now],
    },
    viewGuard(run.id, plan.view),
    {
      sql: `UPDATE runs SET status = 'complete', error = NULL, retrying = NULL, updated_at = ?2, finished_at = ?2 WHERE id = ?1`,
      params: [run.id, now],
    },
    {
      sql: `INSERT INTO datasets (name, run_id, swapped_at, official, source) VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, swapped_at = excluded.swapped_at,
  official = excluded.official, source = excluded.source`,
      params: [dataset, run.id, now, plan.provenance.official ? 1 : 0, plan.provenance.source],
    },
    view.drop,
    // DROP, not DELETE: D1 bills every deleted row as a row written, which would
    // double a full load's cost; dropping a table frees its pages without that.
    ...SPLITS.flatMap((s) => [
      { sql: `DROP TABLE IF EXISTS ${liveTable(dataset, s)}`, params: [] },
      { sql: `ALTER TABLE ${shadowTable(dataset, s)} RENAME TO ${liveTable(dataset, s)}`, params: [] },
    ]),
    ...view.create,
    // The dataset's class names and counts, so /stats reads a few rows instead of scanning
    // it; written as upserts that skip unchanged rows, so a reload bills only what changed.
    { sql: "DELETE FROM classes WHERE dataset = ?1 AND label >= ?2", params: [dataset, plan.classNames.length] },
    {
      sql: `INSERT INTO classes (dataset, label, name) SELECT ?1, CAST(key AS INTEGER), value FROM json_each(?2) WHERE true
ON CONFLICT (dataset, label) DO UPDATE SET name = excluded.name WHERE name IS NOT excluded.name`,
      params: [dataset, JSON.stringify(plan.classNames)],
    },
    { sql: "DELETE FROM class_counts WHERE dataset = ?1 AND label >= ?2", params: [dataset, plan.classNames.length] },
    ...SPLITS.map((s) => ({
      sql: `INSERT INTO class_counts (dataset, split, label, n)
SELECT ?1, '${s}', CAST(l.key AS INTEGER), COALESCE(g.n, 0) FROM json_each(?2) AS l
LEFT JOIN (SELECT label, COUNT(*) AS n FROM ${liveTable(dataset, s)} GROUP BY label) AS g ON g.label = l.key WHERE true
ON CONFLICT (dataset, split, label) DO UPDATE SET n = excluded.n WHERE n IS NOT excluded.n`,
      params: [dataset, JSON.stringify(plan.classNames)],
    })),
  ];
}

/**
 * The guard row that makes DDL conditional: inserted first in a batch, its
 * CHECK (run_status = 'extracting') aborts the whole batch, DDL included,
 * unless the run is extracting at that moment.
 */
const claimGuard = (runId: string, now: string): Statement => ({
  sql: `INSERT INTO shadow_claims (run_id, run_status, claimed_at)
SELECT ?1, (SELECT status FROM runs WHERE id = ?1), ?2 WHERE true
ON CONFLICT (run_id) DO UPDATE SET run_status = excluded.run_status, claimed_at = excluded.claimed_at`,
  params: [runId, now],
});

/**
 * queued → extracting, dropping whatever shadow tables an earlier run of the
 * dataset left, as one batch: their rows must not mix into this run. DROP
 * rather than DELETE, for the billing reason given in swapStatements; and
 * since DDL cannot be made conditional, the guard (claimGuard) aborts the
 * whole batch unless the run is extracting after the UPDATE, so a job
 * redelivered while its run already loads drops nothing.
 */
export function claimShadowStatements(run: RunRef, now: string): Statement[] {
  return [
    {
      sql: "UPDATE runs SET status = 'extracting', updated_at = ?2 WHERE id = ?1 AND status IN ('queued', 'extracting')",
      params: [run.id, now],
    },
    claimGuard(run.id, now),
    ...SPLITS.map((s) => ({ sql: `DROP TABLE IF EXISTS ${shadowTable(run.dataset, s)}`, params: [] })),
  ];
}

export interface LoadingPlan {
  readonly expected: Readonly<Record<Split, number>>;
  readonly chunksTotal: number;
  readonly shape: { readonly rows: number; readonly cols: number; readonly channels: number };
  readonly classNames: readonly string[];
}

/**
 * extracting → loading, creating the run's empty shadow tables for the shape
 * its headers declared, as one batch guarded like the claim: only a run that
 * is still extracting gets fresh tables, so a redelivered job of a run that
 * already loads leaves its rows alone.
 */
export function startLoadingStatements(run: RunRef, plan: LoadingPlan, now: string): Statement[] {
  const { rows, cols, channels } = plan.shape;
  const pixelBytes = rows * cols * channels * 4;
  return [
    claimGuard(run.id, now),
    ...SPLITS.flatMap((s) => [
      { sql: `DROP TABLE IF EXISTS ${shadowTable(run.dataset, s)}`, params: [] },
      { sql: createImageTableSql(shadowTable(run.dataset, s), pixelBytes), params: [] },
    ]),
    {
      sql: `UPDATE runs SET status = 'loading', train_expected = ?2, test_expected = ?3, chunks_total = ?4,
  image_rows = ?5, image_cols = ?6, image_channels = ?7, class_names = ?8, error = NULL, updated_at = ?9
WHERE id = ?1 AND status = 'extracting'`,
      params: [
        run.id,
        plan.expected.train,
        plan.expected.test,
        plan.chunksTotal,
        rows,
        cols,
        channels,
        JSON.stringify(plan.classNames),
        now,
      ],
    },
  ];
}
