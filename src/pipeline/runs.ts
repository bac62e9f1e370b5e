/**
 * Run lifecycle: start (with the one-active-run guard), extracting, loading,
 * complete, failed. The `runs` row is the single source of truth for a run's
 * progress and errors; every transition is a conditional UPDATE so that
 * redelivered messages and racing consumers cannot move a run backwards.
 */
import { and, desc, eq, inArray, isNotNull, lt, sql } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import * as schema from "../db/schema";
import { ACTIVE_STATUSES, runs, type Run, type Trigger } from "../db/schema";
import type { Split } from "../datasets";
import { CLEAR_SHADOW_SQL, runBatch, swapStatements } from "./load";

export type Db = DrizzleD1Database<typeof schema> & { readonly $client: D1Database };
export const database = (d1: D1Database): Db => drizzle(d1, { schema });

const now = (): string => new Date().toISOString();

/** An active run with no progress for this long is presumed dead (its messages exhausted or lost). */
export const STALE_AFTER_MS = 30 * 60 * 1000;

export type StartResult =
  { readonly started: true; readonly run: Run } | { readonly started: false; readonly active: Run };

export interface StartRequest {
  readonly trigger: Trigger;
  readonly source: string;
}

/**
 * Insert a queued run, unless one is active. The partial unique index
 * `runs_single_active` makes the check and the insert one atomic step.
 */
export async function createRun(db: Db, req: StartRequest): Promise<StartResult> {
  const at = now();
  await abandonStale(db, at);
  const id = crypto.randomUUID();
  const inserted = await db
    .insert(runs)
    .values({ id, trigger: req.trigger, source: req.source, status: "queued", createdAt: at, updatedAt: at })
    .onConflictDoNothing()
    .returning();
  const run = inserted[0];
  if (run) return { started: true, run };
  const active = await activeRun(db);
  if (!active) throw new Error("run was not inserted, yet no run is active");
  return { started: false, active };
}

export type ResumeResult =
  | { readonly resumed: true; readonly run: Run }
  | { readonly resumed: false; readonly why: "unknown" | "not-resumable"; readonly message: string }
  | { readonly resumed: false; readonly why: "active"; readonly active: Run };

/**
 * failed → loading, for the latest run and only if it got as far as loading:
 * then its ledger and shadow rows are still its own (any later run would have
 * emptied the shadow), so loading the missing chunks finishes the dataset.
 */
export async function resumeRun(db: Db, id: string): Promise<ResumeResult> {
  const at = now();
  await abandonStale(db, at);
  let rows: Run[];
  try {
    rows = await db
      .update(runs)
      .set({ status: "loading", error: null, finishedAt: null, updatedAt: at })
      .where(
        and(
          eq(runs.id, id),
          eq(runs.status, "failed"),
          isNotNull(runs.chunksTotal),
          sql`NOT EXISTS (SELECT 1 FROM runs AS later WHERE later.created_at > ${runs.createdAt})`,
        ),
      )
      .returning();
  } catch (err) {
    // runs_single_active refused a second active run.
    const active = await activeRun(db);
    if (active) return { resumed: false, why: "active", active };
    throw err;
  }
  if (rows[0]) return { resumed: true, run: rows[0] };
  const run = await getRun(db, id);
  if (!run) return { resumed: false, why: "unknown", message: `no run ${id}` };
  const active = run.status === "failed" ? await activeRun(db) : undefined;
  if (active) return { resumed: false, why: "active", active };
  const why =
    run.status !== "failed"
      ? `it is ${run.status}`
      : run.chunksTotal === null
        ? "it failed before loading began (nothing to resume); start a new run"
        : "a later run has started since; start a new run";
  return { resumed: false, why: "not-resumable", message: `run ${id} cannot be resumed: ${why}` };
}

/** The chunks a run has committed, as `split:start:count`. */
export async function committedChunks(db: Db, runId: string): Promise<Set<string>> {
  const rows = await db.select().from(schema.runChunks).where(eq(schema.runChunks.runId, runId));
  return new Set(rows.map((r) => chunkKey(r)));
}

export async function forgetChunks(db: Db, runId: string): Promise<void> {
  await db.delete(schema.runChunks).where(eq(schema.runChunks.runId, runId));
}

export const chunkKey = (c: { split: string; start: number; count: number }): string =>
  `${c.split}:${c.start}:${c.count}`;

export async function activeRun(db: Db): Promise<Run | undefined> {
  const rows = await db.select().from(runs).where(inArray(runs.status, ACTIVE_STATUSES)).limit(1);
  return rows[0];
}

async function abandonStale(db: Db, at: string): Promise<void> {
  const cutoff = new Date(Date.parse(at) - STALE_AFTER_MS).toISOString();
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

export async function listRuns(db: Db, limit: number): Promise<Run[]> {
  return db.select().from(runs).orderBy(desc(runs.createdAt)).limit(limit);
}

/**
 * queued → extracting; false if the run is no longer waiting for extraction.
 * Empties the shadow table in the same transaction: whatever a failed run left
 * there must not mix into this one.
 */
export async function markExtracting(db: Db, id: string): Promise<boolean> {
  const d1 = db.$client;
  const [moved] = await d1.batch<{ id: string }>([
    d1
      .prepare(
        "UPDATE runs SET status = 'extracting', updated_at = ?2 WHERE id = ?1 AND status IN ('queued', 'extracting') RETURNING id",
      )
      .bind(id, now()),
    d1
      .prepare(`${CLEAR_SHADOW_SQL} WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND status = 'extracting')`)
      .bind(id),
  ]);
  return (moved?.results.length ?? 0) > 0;
}

export interface LoadPlan {
  readonly checksums: Record<string, string>;
  readonly expected: Readonly<Record<Split, number>>;
  readonly chunksTotal: number;
}

/** extracting → loading, with what the run must load. Idempotent for a retried extraction. */
export async function markLoading(db: Db, id: string, plan: LoadPlan): Promise<boolean> {
  const rows = await db
    .update(runs)
    .set({
      status: "loading",
      checksums: plan.checksums,
      trainExpected: plan.expected.train,
      testExpected: plan.expected.test,
      chunksTotal: plan.chunksTotal,
      error: null,
      updatedAt: now(),
    })
    .where(and(eq(runs.id, id), inArray(runs.status, ["extracting", "loading"])))
    .returning({ id: runs.id });
  return rows.length > 0;
}

/** Record the archives' MD5s once all are known (the run started loading with the labels' only). */
export async function recordChecksums(db: Db, id: string, checksums: Record<string, string>): Promise<void> {
  await db
    .update(runs)
    .set({ checksums, updatedAt: now() })
    .where(and(eq(runs.id, id), inArray(runs.status, ["loading", "complete"])));
}

/** Whether a dataset from an earlier complete run is in place, which a new load could merely repeat. */
export async function hasCompleteRun(db: Db): Promise<boolean> {
  const rows = await db.select({ id: runs.id }).from(runs).where(eq(runs.status, "complete")).limit(1);
  return rows.length > 0;
}

/**
 * The latest complete run, if its archives were byte-identical to these and D1
 * still holds exactly its rows: then a new load would rewrite the same bytes.
 */
export async function unchangedSince(
  db: Db,
  checksums: Record<string, string>,
  expected: Readonly<Record<Split, number>>,
): Promise<Run | undefined> {
  const [last] = await db
    .select()
    .from(runs)
    .where(eq(runs.status, "complete"))
    .orderBy(desc(runs.finishedAt))
    .limit(1);
  if (!last?.checksums || !sameChecksums(last.checksums, checksums)) return undefined;
  if (last.trainExpected !== expected.train || last.testExpected !== expected.test) return undefined;
  const counts = await countImages(db);
  return counts.train === expected.train && counts.test === expected.test ? last : undefined;
}

const sameChecksums = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
};

export const countImages = (db: Db): Promise<Record<Split, number>> => countRows(db, "images");

async function countRows(db: Db, table: "images" | "images_next"): Promise<Record<Split, number>> {
  const rows = await db.all<{ split: Split; n: number }>(
    sql`SELECT split, COUNT(*) AS n FROM ${sql.identifier(table)} GROUP BY split`,
  );
  const counts: Record<Split, number> = { train: 0, test: 0 };
  for (const r of rows) counts[r.split] = r.n;
  return counts;
}

/** extracting → complete without a write: the dataset in D1 is already this one. */
export async function completeUnchanged(db: Db, id: string, plan: Omit<LoadPlan, "chunksTotal">): Promise<void> {
  const at = now();
  await db
    .update(runs)
    .set({
      status: "complete",
      unchanged: true,
      checksums: plan.checksums,
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

/** Any active state → failed, keeping the first reason if two failures race. */
export async function failRun(db: Db, id: string, reason: string): Promise<boolean> {
  const at = now();
  const rows = await db
    .update(runs)
    .set({ status: "failed", error: reason, updatedAt: at, finishedAt: at })
    .where(and(eq(runs.id, id), inArray(runs.status, ACTIVE_STATUSES)))
    .returning({ id: runs.id });
  return rows.length > 0;
}

/** Record a failure that will be retried, so a stuck run shows why. */
export async function noteRetry(db: Db, id: string, reason: string): Promise<void> {
  await db
    .update(runs)
    .set({ error: `retrying: ${reason}`, updatedAt: now() })
    .where(and(eq(runs.id, id), inArray(runs.status, ACTIVE_STATUSES)));
}

export type Completion = "complete" | "pending" | "failed";

/**
 * Once every chunk is in the ledger, swap the shadow rows in as the dataset —
 * only if D1 itself counts exactly the expected rows there (counted in D1 inside
 * the swap's transaction, not taken from counters). A mismatch fails the run
 * and leaves `images` as it was.
 */
export async function completeIfDone(db: Db, id: string): Promise<Completion> {
  const run = await getRun(db, id);
  if (!run || run.status === "failed") return "failed";
  if (run.status === "complete") return "complete";
  if (run.status !== "loading" || run.chunksTotal === null) return "pending";
  const [done] = await db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM run_chunks WHERE run_id = ${id}`);
  if ((done?.n ?? 0) < run.chunksTotal) return "pending";

  const expected = { train: run.trainExpected ?? 0, test: run.testExpected ?? 0 };
  try {
    await runBatch(db.$client, swapStatements(id, expected, now()));
    return "complete";
  } catch (err) {
    // The guard aborted the swap (or D1 failed): find out which from D1 itself.
    const after = await getRun(db, id);
    if (after?.status === "complete") return "complete"; // another consumer swapped first
    if (after?.status !== "loading") return "failed";
    const counts = await countRows(db, "images_next");
    if (counts.train === expected.train && counts.test === expected.test) throw err; // transient: retry
    const reason = `all ${run.chunksTotal} chunks were recorded but D1 holds ${counts.train} train and ${counts.test} test rows for this run; expected ${expected.train} and ${expected.test}. The previous dataset was left as it was`;
    console.error(`run ${id} failed: ${reason}`);
    await failRun(db, id, reason);
    return "failed";
  }
}
