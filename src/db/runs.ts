/**
 * Run lifecycle after the start (./run-start.ts): extracting, loading,
 * complete, failed. The `runs` row is the single source of truth for a run's
 * progress and errors; every transition is a conditional UPDATE so that
 * redelivered messages and racing consumers cannot move a run backwards.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import * as schema from "./schema";
import { ACTIVE_STATUSES, runs, type Run } from "./schema";
import type { Split } from "../core/datasets";
import { SourceChangedError } from "../core/errors";
import { runBatch } from "./batch";
import { classifyD1Error, isSqlError } from "./d1-errors";
import { claimShadowStatements, startLoadingStatements, swapStatements, type LoadingPlan, type RunRef } from "./load";
import { now, type Db } from "./database";
import { countRows } from "./run-checks";
import { getRun } from "./run-reads";
import { runProvenance } from "./provenance";
import { shadowTable } from "./tables";
import { readViewPlan } from "./view";

/** Longest error text kept on a run: an error can quote a request, and GET /runs lists twenty runs. */
export const MAX_ERROR_CHARS = 2_000;
const bounded = (reason: string): string =>
  reason.length <= MAX_ERROR_CHARS ? reason : `${reason.slice(0, MAX_ERROR_CHARS - 1)}…`;
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
  const view = await readViewPlan(db.$client, run.dataset);
  const classNames = run.classNames ?? [];
  const provenance = runProvenance(run);
  try {
    await runBatch(db.$client, swapStatements(run, { expected, others, view, classNames, provenance }, now()));
    return "complete";
  } catch (err) {
    // The guard aborted the swap (or D1 failed): find out which from D1 itself.
    const after = await getRun(db, id);
    if (after?.status === "complete") return "complete"; // another consumer swapped first
    if (after?.status !== "loading") return "failed";
    const counts = await countRows(db, shadowTable(run.dataset, "train"), shadowTable(run.dataset, "test"));
    let reason: string;
    if (counts.train === expected.train && counts.test === expected.test) {
      // The guard refused (a dataset joined the catalog or a table went since the plan was read) or D1 failed on
      // the way: try again.
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
