/**
 * Recreating the `images` view over the tables that exist. A batch that
 * recreates it (a swap, a deletion) plans the view from sqlite_master, not
 * from the catalog alone: a table a user dropped by hand is left out, so the
 * view works again for every other dataset. The plan is read before the batch,
 * so the batch opens with a guard (migrations/0007_datasets_managed.sql,
 * `view_guards`) that aborts it unless the same tables exist when it runs.
 */
import { SPLITS, type Split } from "../core/datasets";
import type { Statement } from "./batch";
import { imagesViewSql, liveTableSql, type ViewTerm } from "./tables";

/** The live tables of the catalog's datasets other than `?N`'s that exist: `dataset`, `split`, `tbl`. */
const existingTablesSql = (except: string): string =>
  SPLITS.map(
    (s) => `SELECT d.name AS dataset, '${s}' AS split, m.name AS tbl FROM datasets d
  JOIN sqlite_master m ON m.type = 'table' AND m.name = ${liveTableSql("d.name", s)}
  WHERE d.name <> ${except}`,
  ).join("\nUNION ALL\n");

/** The tables a view is planned over: every other dataset's that exist, and the batch's own dataset. */
export interface ViewPlan {
  /** The dataset the batch swaps in or deletes: its own tables are the batch's to decide. */
  readonly dataset: string;
  /** The other datasets' live tables that existed when the plan was read. */
  readonly others: readonly (ViewTerm & { readonly table: string })[];
}

/** Which of the other datasets' tables exist now, to plan a batch on. */
export async function readViewPlan(db: D1Database, dataset: string): Promise<ViewPlan> {
  const { results } = await db
    .prepare(`${existingTablesSql("?1")}\nORDER BY tbl`)
    .bind(dataset)
    .all<{ dataset: string; split: Split; tbl: string }>();
  return { dataset, others: results.map((r) => ({ dataset: r.dataset, split: r.split, table: r.tbl })) };
}

/**
 * The first statement of a batch planned on `plan`: its row's CHECK aborts the
 * batch unless exactly the planned tables exist. `id` names the batch's row.
 */
export function viewGuard(id: string, plan: ViewPlan): Statement {
  const existing = existingTablesSql("?3");
  return {
    sql: `INSERT INTO view_guards (id, planned, found, matched)
SELECT ?1, json_array_length(?2), (SELECT COUNT(*) FROM (${existing})),
  (SELECT COUNT(*) FROM (${existing}) WHERE tbl IN (SELECT value FROM json_each(?2)))`,
    params: [id, JSON.stringify(plan.others.map((t) => t.table)), plan.dataset],
  };
}

/**
 * The view's statements for the batch: drop it (before any table is renamed
 * or dropped: SQLite refuses to rename a table while a view names a missing
 * one), and after the batch's DDL recreate it over the other datasets' tables
 * and, if `withOwn`, both of the dataset's own, then release the guard row.
 */
export function viewStatements(id: string, plan: ViewPlan, withOwn: boolean) {
  const terms: (string | ViewTerm)[] = [...plan.others, ...(withOwn ? [plan.dataset] : [])];
  return {
    drop: { sql: "DROP VIEW IF EXISTS images", params: [] } satisfies Statement,
    create: [
      { sql: imagesViewSql(terms), params: [] },
      { sql: "DELETE FROM view_guards WHERE id = ?1", params: [id] },
    ] satisfies Statement[],
  };
}
