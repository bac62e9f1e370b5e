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
