/**
 * What a new run checks before it writes: whether the dataset was loaded
 * before, whether these very archives were (so a load would rewrite the same
 * bytes), and how many rows a dataset's tables hold.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import * as schema from "./schema";
import { runs, type Run } from "./schema";
import type { Split } from "../core/datasets";
import type { Db } from "./database";
import { liveTable } from "./tables";

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

/** The rows a dataset's tables hold (none if it has no tables yet, or a table of it was dropped by hand). */
export async function countImages(db: Db, dataset: string): Promise<Record<Split, number>> {
  const [train, test] = [liveTable(dataset, "train"), liveTable(dataset, "test")];
  const [listed] = await db.select().from(schema.datasets).where(eq(schema.datasets.name, dataset));
  if (!listed) return { train: 0, test: 0 };
  const tables = await db.all<{ name: string }>(
    sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${train}, ${test})`,
  );
  return tables.length === 2 ? countRows(db, train, test) : { train: 0, test: 0 };
}

export async function countRows(db: Db, train: string, test: string): Promise<Record<Split, number>> {
  const [row] = await db.all<Record<Split, number>>(
    sql`SELECT (SELECT COUNT(*) FROM ${sql.identifier(train)}) AS train, (SELECT COUNT(*) FROM ${sql.identifier(test)}) AS test`,
  );
  return { train: row?.train ?? 0, test: row?.test ?? 0 };
}
