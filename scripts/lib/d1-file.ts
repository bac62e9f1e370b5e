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
import { redactText } from "../../src/codec/source";
import type { RunView } from "../../src/http/schemas/runs";

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

/** SQLITE_BUSY and SQLITE_LOCKED: the runtime holds a lock a moment longer than a reader waits. */
const BUSY = new Set([5, 6]);

/** The `runs` columns a RunState needs (migrations/ defines them; drizzle-orm would cost a second of CPU to load). */
const RUN_SELECT = `SELECT id, dataset, status, unchanged, train_expected, train_loaded, test_expected, test_loaded,
  checksums, error, created_at, updated_at, finished_at FROM runs`;

interface RunRow {
  id: string;
  dataset: string;
  status: RunState["status"];
  unchanged: number;
  train_expected: number | null;
  train_loaded: number;
  test_expected: number | null;
  test_loaded: number;
  checksums: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

function runState(row: RunRow): RunState {
  return {
    id: row.id,
    dataset: row.dataset,
    status: row.status,
    unchanged: row.unchanged === 1,
    splits: {
      train: { expected: row.train_expected, loaded: row.train_loaded },
      test: { expected: row.test_expected, loaded: row.test_loaded },
    },
    checksums: row.checksums === null ? null : (JSON.parse(row.checksums) as Record<string, string>),
    error: row.error === null ? null : redactText(row.error),
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
    durationMs: Date.parse(row.finished_at ?? row.updated_at) - Date.parse(row.created_at),
  };
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
    let row: RunRow | undefined;
    try {
      row = this.query<RunRow>(`${RUN_SELECT} WHERE id = ?`, id)[0];
    } catch (err) {
      if (BUSY.has((err as { errcode?: number }).errcode ?? 0)) return undefined;
      throw err;
    }
    return row ? runState(row) : null;
  }

  /** The runs not yet complete or failed, of every dataset. */
  activeRuns(): RunState[] {
    return this.query<RunRow>(
      `${RUN_SELECT} WHERE status IN ('queued', 'extracting', 'loading') ORDER BY created_at`,
    ).map(runState);
  }

  /** Whether `images` holds the dataset: a complete run's swap put its rows there (datasets.run_id). */
  hasCompleteLoad(dataset: string): boolean {
    return this.query("SELECT 1 FROM datasets WHERE name = ? AND run_id IS NOT NULL", dataset).length > 0;
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
