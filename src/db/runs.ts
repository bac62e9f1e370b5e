/**
 * Run lifecycle: start (with the one-active-run guard), extracting, loading,
 * complete, failed. The `runs` row is the single source of truth for a run's
 * progress and errors; every transition is a conditional UPDATE so that
 * redelivered messages and racing consumers cannot move a run backwards.
 */
import { and, desc, eq, inArray, isNotNull, lt, sql } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import * as schema from "./schema";
import { ACTIVE_STATUSES, runs, type CustomRunSpec, type Run, type Trigger } from "./schema";
import type { Split } from "../core/datasets";
import { SourceChangedError } from "../core/errors";
import { runBatch } from "./batch";
import { classifyD1Error, isSqlError } from "./d1-errors";
import { claimShadowStatements, startLoadingStatements, swapStatements, type LoadingPlan, type RunRef } from "./load";
import { liveTable, shadowTable } from "./tables";

export type Db = DrizzleD1Database<typeof schema> & { readonly $client: D1Database };
export const database = (d1: D1Database): Db => drizzle(d1, { schema });

const now = (): string => new Date().toISOString();

/**
 * The longest a run may go without a sign of life before a new trigger may
 * presume it dead (its runtime crashed, its messages were lost): the default
 * for RUN_LEASE_SECONDS. Signs of life are every transition, every committed
 * delivery, every retry a consumer notes, and the extraction job's heartbeat
 * (HEARTBEATS_PER_LEASE per lease), so a live run renews it many times over.
 */
export const DEFAULT_LEASE_MS = 60_000;
export const HEARTBEATS_PER_LEASE = 4;

/** Longest error text kept on a run: an error can quote a request, and GET /runs lists twenty runs. */
export const MAX_ERROR_CHARS = 2_000;
const bounded = (reason: string): string =>
  reason.length <= MAX_ERROR_CHARS ? reason : `${reason.slice(0, MAX_ERROR_CHARS - 1)}…`;

export type StartResult =
  { readonly started: true; readonly run: Run } | { readonly started: false; readonly active: Run };

export interface StartRequest {
  readonly trigger: Trigger;
  readonly dataset: string;
  readonly source: string;
  /** A custom dataset's files and class names; absent for a registry dataset. */
  readonly spec?: CustomRunSpec;
}

/**
 * Insert a queued run, unless one is active for the dataset. The partial
 * unique index `runs_single_active` makes the check and the insert one atomic step.
 */
export async function createRun(db: Db, req: StartRequest, leaseMs = DEFAULT_LEASE_MS): Promise<StartResult> {
  const at = now();
  await abandonStale(db, at, leaseMs);
  const id = crypto.randomUUID();
  const inserted = await db
    .insert(runs)
    .values({
      id,
      dataset: req.dataset,
      trigger: req.trigger,
      source: req.source,
      spec: req.spec ?? null,
      status: "queued",
      createdAt: at,
      updatedAt: at,
    })
    .onConflictDoNothing()
    .returning();
  const run = inserted[0];
  if (run) return { started: true, run };
  const active = await activeRun(db, req.dataset);
  if (!active) throw new Error(`run was not inserted, yet no ${req.dataset} run is active`);
  // D1 can report an error after committing; a retried insert then meets its own row.
  if (active.id === id) return { started: true, run: active };
  return { started: false, active };
}

export type ResumeResult =
  | { readonly resumed: true; readonly run: Run }
  | { readonly resumed: false; readonly why: "unknown" | "not-resumable"; readonly message: string }
  | { readonly resumed: false; readonly why: "active"; readonly active: Run };

/**
 * failed → loading, for the latest run of its dataset and only if it got as far
 * as loading: then its ledger and shadow rows are still its own (any later run
 * of the dataset would have dropped its shadow tables), so loading the missing chunks finishes the dataset —
 * unless it failed because its source changed under it. A resume is a new
 * attempt: messages of the earlier ones can no longer fail or re-extract it.
 */
export async function resumeRun(db: Db, id: string, leaseMs = DEFAULT_LEASE_MS): Promise<ResumeResult> {
  const at = now();
  await abandonStale(db, at, leaseMs);
  let rows: Run[];
  try {
    rows = await db
      .update(runs)
      .set({
        status: "loading",
        error: null,
        retrying: null,
        finishedAt: null,
        updatedAt: at,
        attempt: sql`${runs.attempt} + 1`,
      })
      .where(
        and(
          eq(runs.id, id),
          eq(runs.status, "failed"),
          eq(runs.resumable, true),
          isNotNull(runs.chunksTotal),
          sql`NOT EXISTS (SELECT 1 FROM runs AS later WHERE later.dataset = ${runs.dataset} AND later.created_at > ${runs.createdAt})`,
        ),
      )
      .returning();
  } catch (err) {
    // runs_single_active refused a second active run of the dataset.
    const run = await getRun(db, id);
    const active = run && (await activeRun(db, run.dataset));
    if (active) return { resumed: false, why: "active", active };
    throw err;
  }
  if (rows[0]) return { resumed: true, run: rows[0] };
  const run = await getRun(db, id);
  if (!run) return { resumed: false, why: "unknown", message: `no run ${id}` };
  // Still active itself (perhaps dead, within its lease) or another run is: say which, as a trigger would.
  const active = (ACTIVE_STATUSES as readonly string[]).includes(run.status) ? run : await activeRun(db, run.dataset);
  if (active) return { resumed: false, why: "active", active };
  const why =
    run.status !== "failed"
      ? `it is ${run.status}`
      : run.chunksTotal === null
        ? "it failed before loading began (nothing to resume); start a new run"
        : !run.resumable
          ? "its source changed while it ran, so the rows it loaded cannot be completed; start a new run"
          : `a later ${run.dataset} run has started since; start a new run`;
  return { resumed: false, why: "not-resumable", message: `run ${id} cannot be resumed: ${why}` };
}

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

/** The dataset's active run, or any dataset's if none is named. */
export async function activeRun(db: Db, dataset?: string): Promise<Run | undefined> {
  const rows = await db
    .select()
    .from(runs)
    .where(and(inArray(runs.status, ACTIVE_STATUSES), dataset === undefined ? undefined : eq(runs.dataset, dataset)))
    .limit(1);
  return rows[0];
}

async function abandonStale(db: Db, at: string, leaseMs: number): Promise<void> {
  const cutoff = new Date(Date.parse(at) - leaseMs).toISOString();
  await db
    .update(runs)
    .set({
      status: "failed",
      error: sql`'abandoned: no progress since ' || ${runs.updatedAt} || coalesce('; last error: ' || ${runs.error}, '')`,
      updatedAt: at,
      finishedAt: at,
    })
    .where(and(inArray(runs.status, ACTIVE_STATUSES), lt(runs.updatedAt, cutoff)));
}

export async function getRun(db: Db, id: string): Promise<Run | undefined> {
  const rows = await db.select().from(runs).where(eq(runs.id, id)).limit(1);
  return rows[0];
}

/**
 * The newest run of every dataset that has one. The correlated subquery walks
 * runs_by_dataset (dataset, created_at DESC); ties on created_at go to the
 * greater id, so each dataset has exactly one.
 */
export async function newestRunPerDataset(db: Db): Promise<Run[]> {
  return db
    .select()
    .from(runs)
    .where(
      sql`${runs.id} = (SELECT newest.id FROM runs AS newest WHERE newest.dataset = ${runs.dataset} ORDER BY newest.created_at DESC, newest.id DESC LIMIT 1)`,
    );
}

/** The latest runs, of one dataset or of all. */
export async function listRuns(db: Db, limit: number, dataset?: string): Promise<Run[]> {
  return db
    .select()
    .from(runs)
    .where(dataset === undefined ? undefined : eq(runs.dataset, dataset))
    .orderBy(desc(runs.createdAt))
    .limit(limit);
}

/**
 * queued → extracting, dropping the dataset's old shadow tables in the same
 * transaction (claimShadowStatements); false if the run is no longer waiting
 * for extraction.
 */
export async function markExtracting(db: Db, run: RunRef): Promise<boolean> {
  const id = run.id;
  try {
    await runBatch(db.$client, claimShadowStatements(run, now()));
    return true;
  } catch (err) {
    // The claim's CHECK aborted the batch (the run had moved on), or D1 failed: D1 says which.
    const run = await getRun(db, id);
    if (run?.status !== "extracting" && run?.status !== "queued") return false;
    throw err;
  }
}

/**
 * extracting → loading, with what the run must load, creating its shadow
 * tables (startLoadingStatements). A run already loading (a redelivered job, a
 * resume, a later segment of the job) keeps its tables and rows; its plan is
 * renewed, and a shape other than the one it loads is a changed source.
 */
export async function markLoading(db: Db, run: RunRef, plan: LoadingPlan): Promise<boolean> {
  try {
    await runBatch(db.$client, startLoadingStatements(run, plan, now()));
    return true;
  } catch (err) {
    const after = await getRun(db, run.id);
    if (after?.status === "extracting") throw err; // D1 failed: retry
    if (after?.status !== "loading") return false;
  }
  const { rows, cols, channels } = plan.shape;
  const updated = await db
    .update(runs)
    .set({
      trainExpected: plan.expected.train,
      testExpected: plan.expected.test,
      chunksTotal: plan.chunksTotal,
      error: null,
      updatedAt: now(),
    })
    .where(
      and(
        eq(runs.id, run.id),
        eq(runs.status, "loading"),
        eq(runs.imageRows, rows),
        eq(runs.imageCols, cols),
        eq(runs.imageChannels, channels),
      ),
    )
    .returning({ id: runs.id });
  if (updated.length > 0) return true;
  const after = await getRun(db, run.id);
  if (after?.status !== "loading") return false;
  throw new SourceChangedError(
    `the images are now ${rows}×${cols}×${channels}, but the run loads ${after.imageRows}×${after.imageCols}×${after.imageChannels}; start a new run`,
  );
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

/**
 * The extraction job's heartbeat: renews the run's lease while the job lives.
 * False once the run is no longer active in this attempt (abandoned, failed,
 * resumed anew): the job then stops instead of working for nobody.
 */
export async function heartbeat(db: Db, id: string, attempt: number): Promise<boolean> {
  const rows = await db
    .update(runs)
    .set({ updatedAt: now() })
    .where(and(eq(runs.id, id), eq(runs.attempt, attempt), inArray(runs.status, ACTIVE_STATUSES)))
    .returning({ id: runs.id });
  return rows.length > 0;
}

/** Whether the dataset from an earlier complete run is in place, which a new load could merely repeat. */
export async function hasCompleteRun(db: Db, dataset: string): Promise<boolean> {
  const rows = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.status, "complete"), eq(runs.dataset, dataset)))
    .limit(1);
  return rows.length > 0;
}

/**
 * The latest complete run, if its archives were byte-identical to these and D1
 * still holds exactly its rows: then a new load would rewrite the same bytes.
 */
export async function unchangedSince(
  db: Db,
  run: Run,
  checksums: Record<string, string>,
  expected: Readonly<Record<Split, number>>,
): Promise<Run | undefined> {
  const [last] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.status, "complete"), eq(runs.dataset, run.dataset)))
    .orderBy(desc(runs.finishedAt))
    .limit(1);
  if (!last?.checksums || !sameChecksums(last.checksums, checksums)) return undefined;
  if (last.trainExpected !== expected.train || last.testExpected !== expected.test) return undefined;
  // Same files, read as another dataset (a custom one renamed its classes): reload.
  if (JSON.stringify(last.spec) !== JSON.stringify(run.spec)) return undefined;
  const counts = await countImages(db, run.dataset);
  return counts.train === expected.train && counts.test === expected.test ? last : undefined;
}

const sameChecksums = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
};

/** The rows a dataset's tables hold (none if it has no tables yet). */
export async function countImages(db: Db, dataset: string): Promise<Record<Split, number>> {
  const [listed] = await db.select().from(schema.datasets).where(eq(schema.datasets.name, dataset));
  return listed ? countRows(db, liveTable(dataset, "train"), liveTable(dataset, "test")) : { train: 0, test: 0 };
}

async function countRows(db: Db, train: string, test: string): Promise<Record<Split, number>> {
  const [row] = await db.all<Record<Split, number>>(
    sql`SELECT (SELECT COUNT(*) FROM ${sql.identifier(train)}) AS train, (SELECT COUNT(*) FROM ${sql.identifier(test)}) AS test`,
  );
  return { train: row?.train ?? 0, test: row?.test ?? 0 };
}

/** extracting → complete without a write: the dataset in D1 is already this one (the run pinned its MD5s). */
export async function completeUnchanged(
  db: Db,
  id: string,
  plan: { readonly expected: Readonly<Record<Split, number>> },
): Promise<void> {
  const at = now();
  await db
    .update(runs)
    .set({
      status: "complete",
      unchanged: true,
      trainExpected: plan.expected.train,
      testExpected: plan.expected.test,
      trainLoaded: plan.expected.train,
      testLoaded: plan.expected.test,
      chunksTotal: 0,
      updatedAt: at,
      finishedAt: at,
    })
    .where(and(eq(runs.id, id), eq(runs.status, "extracting")));
}

export type AbandonResult =
  { readonly abandoned: true; readonly run: Run } | { readonly abandoned: false; readonly run: Run | undefined };

/** An active run → failed at a user's request; resumable like any run interrupted while loading. */
export async function abandonRun(db: Db, id: string): Promise<AbandonResult> {
  const failed = await failRun(db, id, "abandoned by request (POST /runs/:id/abandon)");
  const run = await getRun(db, id);
  return failed && run ? { abandoned: true, run } : { abandoned: false, run };
}

export interface FailOptions {
  /** False when the rows the run loaded can never be completed (its source changed). */
  readonly resumable?: boolean;
  /** Fail only this attempt of the run: a message left over from an earlier one changes nothing. */
  readonly attempt?: number;
}

/** Any active state → failed, keeping the first reason if two failures race. */
export async function failRun(db: Db, id: string, reason: string, opts: FailOptions = {}): Promise<boolean> {
  const at = now();
  const rows = await db
    .update(runs)
    .set({
      status: "failed",
      error: bounded(reason),
      resumable: opts.resumable ?? true,
      updatedAt: at,
      finishedAt: at,
    })
    .where(
      and(
        eq(runs.id, id),
        inArray(runs.status, ACTIVE_STATUSES),
        opts.attempt === undefined ? undefined : eq(runs.attempt, opts.attempt),
      ),
    )
    .returning({ id: runs.id });
  return rows.length > 0;
}

/** Record a failure that will be retried, so a stuck run shows why. */
export async function noteRetry(db: Db, id: string, reason: string): Promise<void> {
  await db
    .update(runs)
    .set({ retrying: bounded(reason), updatedAt: now() })
    .where(and(eq(runs.id, id), inArray(runs.status, ACTIVE_STATUSES)));
}

export type Completion = "complete" | "pending" | "failed";

/**
 * Once every chunk is in the ledger, swap the shadow rows in as the dataset —
 * only if D1 itself counts exactly the expected rows there (counted in D1 inside
 * the swap's transaction, not taken from counters). A mismatch fails the run
 * and leaves the dataset's tables as they were.
 */
export async function completeIfDone(db: Db, id: string): Promise<Completion> {
  const run = await getRun(db, id);
  if (!run || run.status === "failed") return "failed";
  if (run.status === "complete") return "complete";
  if (run.status !== "loading" || run.chunksTotal === null) return "pending";
  const [done] = await db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM run_chunks WHERE run_id = ${id}`);
  if ((done?.n ?? 0) < run.chunksTotal) return "pending";

  const expected = { train: run.trainExpected ?? 0, test: run.testExpected ?? 0 };
  const others = (await db.select({ name: schema.datasets.name }).from(schema.datasets)).map((d) => d.name);
  const classNames = run.classNames ?? [];
  try {
    await runBatch(db.$client, swapStatements(run, { expected, others, classNames }, now()));
    return "complete";
  } catch (err) {
    // The guard aborted the swap (or D1 failed): find out which from D1 itself.
    const after = await getRun(db, id);
    if (after?.status === "complete") return "complete"; // another consumer swapped first
    if (after?.status !== "loading") return "failed";
    const counts = await countRows(db, shadowTable(run.dataset, "train"), shadowTable(run.dataset, "test"));
    let reason: string;
    if (counts.train === expected.train && counts.test === expected.test) {
      // The guard refused (a dataset joined the catalog meanwhile) or D1 failed on the way: try again.
      // An SQL error, though, would be the same on every try: fail rather than retry for ever.
      if (!isSqlError(classifyD1Error(err))) throw err;
      reason = `the swap failed: ${String(err)}. The previous dataset was left as it was`;
    } else {
      reason = `all ${run.chunksTotal} chunks were recorded but D1 holds ${counts.train} train and ${counts.test} test rows for this run; expected ${expected.train} and ${expected.test}. The previous dataset was left as it was`;
    }
    console.error(`run ${id} failed: ${reason}`);
    await failRun(db, id, reason);
    return "failed";
  }
}
