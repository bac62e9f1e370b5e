/**
 * Starting a run: a new one (with the one-active-run guard) or a resumed one,
 * and the lease after which a run that shows no sign of life is presumed dead
 * and abandoned, so that a new one may start.
 */
import { and, eq, inArray, isNotNull, lt, sql } from "drizzle-orm";
import { ACTIVE_STATUSES, runs, type CustomRunSpec, type Run, type Trigger } from "./schema";
import { now, type Db } from "./database";
import { activeRun, getRun } from "./run-reads";

/**
 * The longest a run may go without a sign of life before a new trigger may
 * presume it dead (its runtime crashed, its messages were lost): the default
 * for RUN_LEASE_SECONDS. Signs of life are every transition, every committed
 * delivery, every retry a consumer notes, and the extraction job's heartbeat
 * (HEARTBEATS_PER_LEASE per lease), so a live run renews it many times over.
 */
export const DEFAULT_LEASE_MS = 60_000;
export const HEARTBEATS_PER_LEASE = 4;
export type StartResult =
  { readonly started: true; readonly run: Run } | { readonly started: false; readonly active: Run };

export interface StartRequest {
  readonly trigger: Trigger;
  readonly dataset: string;
  readonly source: string;
  /** A custom dataset's files and class names; absent for a registry dataset. */
  readonly spec?: CustomRunSpec;
  /** From the registry dataset's official mirrors, so held to the published MD5s (pipeline/dataset.ts); absent: not. */
  readonly official?: boolean;
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
      official: req.official ?? false,
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
/** Fail every active run silent for longer than the lease, as the next trigger would. */
export async function abandonStale(db: Db, at: string, leaseMs: number): Promise<void> {
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
