/**
 * Deleting a dataset from D1: its tables (live and shadow), its catalog
 * entry, classes, counts and export record, and its runs with their ledgers
 * and guard rows, in one batch (one transaction). The batch opens with two
 * guards: a `dataset_deletions` row whose CHECK aborts it if a run of the
 * dataset is active at that moment, and the view's (view.ts), which aborts it
 * unless the other datasets' tables are those the recreated view names. The
 * view is recreated over the tables that exist, so a deletion also repairs it
 * after a table was dropped by hand.
 */
import { SPLITS } from "../core/datasets";
import { runBatch, type Statement } from "./batch";
import { classifyD1Error } from "./d1-errors";
import { ACTIVE_STATUSES } from "./schema";
import { liveTable, shadowTable } from "./tables";
import { readViewPlan, viewGuard, viewStatements, type ViewPlan } from "./view";

const ACTIVE_SQL = ACTIVE_STATUSES.map((s) => `'${s}'`).join(", ");

/** Every table a dataset can have: its live tables and its shadow tables. */
export const datasetTables = (dataset: string): string[] =>
  SPLITS.flatMap((s) => [liveTable(dataset, s), shadowTable(dataset, s)]);

/** The deletion's batch: `id` names its guard rows. */
export function deleteStatements(id: string, plan: ViewPlan, now: string): Statement[] {
  const dataset = plan.dataset;
  const view = viewStatements(id, plan, false);
  const ofRuns = "(SELECT id FROM runs WHERE dataset = ?1)";
  return [
    {
      sql: `INSERT INTO dataset_deletions (id, dataset, active_runs, deleted_at)
SELECT ?1, ?2, (SELECT COUNT(*) FROM runs WHERE dataset = ?2 AND status IN (${ACTIVE_SQL})), ?3`,
      params: [id, dataset, now],
    },
    viewGuard(id, plan),
    ...["dataset_exports", "export_files", "class_counts", "classes"].map((t) => ({
      sql: `DELETE FROM ${t} WHERE dataset = ?1`,
      params: [dataset],
    })),
    { sql: "DELETE FROM datasets WHERE name = ?1", params: [dataset] },
    // The runs' rows in the tables that reference them, then the runs.
    { sql: `DELETE FROM dataset_swaps WHERE dataset = ?1 OR run_id IN ${ofRuns}`, params: [dataset] },
    { sql: `DELETE FROM shadow_claims WHERE run_id IN ${ofRuns}`, params: [dataset] },
    { sql: `DELETE FROM run_chunks WHERE run_id IN ${ofRuns}`, params: [dataset] },
    { sql: "DELETE FROM runs WHERE dataset = ?1", params: [dataset] },
    view.drop,
    // DROP, not DELETE, for the billing reason load.ts swapStatements gives.
    ...datasetTables(dataset).map((t) => ({ sql: `DROP TABLE IF EXISTS ${t}`, params: [] })),
    ...view.create,
  ];
}

/** What a dataset has in D1, read before it is deleted. */
export interface DatasetTraces {
  readonly catalogued: boolean;
  readonly runs: number;
  /** Its tables that exist, live and shadow. */
  readonly tables: readonly string[];
}

export async function readTraces(db: D1Database, dataset: string): Promise<DatasetTraces> {
  const tables = datasetTables(dataset);
  const [catalog, runs, existing] = await db.batch([
    db.prepare("SELECT COUNT(*) AS n FROM datasets WHERE name = ?1").bind(dataset),
    db.prepare("SELECT COUNT(*) AS n FROM runs WHERE dataset = ?1").bind(dataset),
    db
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?1)) ORDER BY name`,
      )
      .bind(JSON.stringify(tables)),
  ]);
  const count = (r: D1Result | undefined) => (r?.results[0] as { n: number } | undefined)?.n ?? 0;
  return {
    catalogued: count(catalog) > 0,
    runs: count(runs),
    tables: (existing?.results as { name: string }[]).map((r) => r.name),
  };
}

export type DeleteOutcome =
  | { readonly deleted: true; readonly traces: DatasetTraces }
  /** A run of the dataset is active: nothing was deleted. */
  | { readonly deleted: false };

/** How often a deletion is planned again when another swap or deletion changed the tables in between. */
const PLAN_ATTEMPTS = 3;

/**
 * Delete the dataset from D1, unless a run of it is active (the guard decides,
 * inside the transaction). `id` names the deletion in `dataset_deletions`.
 */
export async function deleteFromD1(db: D1Database, dataset: string, id: string, now: string): Promise<DeleteOutcome> {
  for (let attempt = 1; ; attempt++) {
    const traces = await readTraces(db, dataset);
    const plan = await readViewPlan(db, dataset);
    try {
      await runBatch(db, deleteStatements(id, plan, now));
      return { deleted: true, traces };
    } catch (err) {
      if (classifyD1Error(err) !== "constraint") throw err;
      // Which guard refused: a run that became active, or tables that changed since the plan.
      const active = await db
        .prepare(`SELECT 1 FROM runs WHERE dataset = ?1 AND status IN (${ACTIVE_SQL}) LIMIT 1`)
        .bind(dataset)
        .first();
      if (active) return { deleted: false };
      if (attempt >= PLAN_ATTEMPTS) throw err;
    }
  }
}
