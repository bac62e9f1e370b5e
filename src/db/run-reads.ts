/**
 * Reading runs: one by id, the active one, the latest ones, the newest of
 * each dataset.
 */
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { ACTIVE_STATUSES, runs, type Run } from "./schema";
import type { Db } from "./database";

/** The dataset's active run, or any dataset's if none is named. */
export async function activeRun(db: Db, dataset?: string): Promise<Run | undefined> {
  const rows = await db
    .select()
    .from(runs)
    .where(and(inArray(runs.status, ACTIVE_STATUSES), dataset === undefined ? undefined : eq(runs.dataset, dataset)))
    .limit(1);
  return rows[0];
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
 * Which of `candidates` a later run of the same dataset has superseded: the
 * condition under which resumeRun refuses to resume one. Only failed runs are
 * asked about (only they could be resumed).
 */
export async function supersededRuns(db: Db, candidates: readonly Run[]): Promise<Set<string>> {
  const ids = candidates.filter((r) => r.status === "failed").map((r) => r.id);
  if (ids.length === 0) return new Set();
  const rows = await db.all<{ id: string }>(
    sql`SELECT r.id FROM runs r WHERE r.id IN (SELECT value FROM json_each(${JSON.stringify(ids)}))
      AND EXISTS (SELECT 1 FROM runs later WHERE later.dataset = r.dataset AND later.created_at > r.created_at)`,
  );
  return new Set(rows.map((r) => r.id));
}
