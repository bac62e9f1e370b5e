/**
 * The local D1 database read straight from its SQLite file, read-only,
 * beside the runtime that writes it. Locally one workerd event loop serves
 * the Worker, D1 and R2, and polls its sockets only when it has nothing else
 * to do: while a job whose every await is answered inside workerd runs (the
 * export job after a load), no request is read until the job ends. The file
 * answers meanwhile: SQLite's WAL shows a reader in another process every
 * committed transaction, so `npm run etl` sees its run complete when it does.
 */
import { DatabaseSync } from "node:sqlite";
import { getTableColumns } from "drizzle-orm";
import { redactText } from "../../src/codec/source";
import { runs, type Run } from "../../src/db/schema";
import type { RunView } from "../../src/http/schemas";

/** What `npm run etl` shows of a run: the fields of GET /runs/{id} it uses, derived as the Worker derives them. */
export type RunState = Pick<
  RunView,
  | "id"
  | "dataset"
  | "status"
  | "unchanged"
  | "splits"
  | "checksums"
  | "error"
  | "updatedAt"
  | "finishedAt"
  | "durationMs"
>;

function runState(run: Run): RunState {
  return {
    id: run.id,
    dataset: run.dataset,
    status: run.status,
    unchanged: run.unchanged,
    splits: {
      train: { expected: run.trainExpected, loaded: run.trainLoaded },
      test: { expected: run.testExpected, loaded: run.testLoaded },
    },
    checksums: run.checksums,
    error: run.error === null ? null : redactText(run.error),
    updatedAt: run.updatedAt,
    finishedAt: run.finishedAt,
    durationMs: Date.parse(run.finishedAt ?? run.updatedAt) - Date.parse(run.createdAt),
  };
}

const RUN_COLUMNS = Object.entries(getTableColumns(runs));
/** SQLITE_BUSY and SQLITE_LOCKED: the runtime holds a lock a moment longer than a reader waits. */
const BUSY = new Set([5, 6]);

/** A `runs` row as the driver returns it, typed as drizzle maps it (JSON and boolean columns decoded). */
function runFromRow(row: Record<string, unknown>): Run {
  return Object.fromEntries(
    RUN_COLUMNS.map(([key, column]) => {
      const value = row[column.name];
      return [key, value === null || value === undefined ? null : column.mapFromDriverValue(value)];
    }),
  ) as Run;
}

export class D1File {
  private readonly db: DatabaseSync;

  constructor(readonly path: string) {
    this.db = new DatabaseSync(path, { readOnly: true, timeout: 1000 });
  }

  query<T>(sql: string, ...params: (string | number | null)[]): T[] {
    return this.db.prepare(sql).all(...params) as T[];
  }

  /** The run; null if there is none; undefined if the file was busy (a writer's checkpoint): ask again. */
  run(id: string): RunState | null | undefined {
    let row: Record<string, unknown> | undefined;
    try {
      row = this.query<Record<string, unknown>>("SELECT * FROM runs WHERE id = ?", id)[0];
    } catch (err) {
      if (BUSY.has((err as { errcode?: number }).errcode ?? 0)) return undefined;
      throw err;
    }
    return row ? runState(runFromRow(row)) : null;
  }

  /** The runs not yet complete or failed, of every dataset. */
  activeRuns(): RunState[] {
    return this.query<Record<string, unknown>>(
      "SELECT * FROM runs WHERE status IN ('queued', 'extracting', 'loading') ORDER BY created_at",
    ).map((row) => runState(runFromRow(row)));
  }

  /** Whether the dataset's current version has its .npy files recorded in R2 (GET /datasets's exportsStored). */
  exportsStored(dataset: string): boolean {
    return (
      this.query(
        "SELECT 1 FROM datasets d JOIN dataset_exports e ON e.dataset = d.name AND e.version = d.run_id WHERE d.name = ?",
        dataset,
      ).length > 0
    );
  }

  close(): void {
    this.db.close();
  }
}
