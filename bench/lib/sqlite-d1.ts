/**
 * A D1Database over Node's own SQLite (node:sqlite), with the project's
 * migrations applied, for running the product's job code in a Node process
 * (bench/scale-job.ts) where no workerd is wanted: its CPU and heap are then
 * the process's to measure. Every call that would cross the D1 binding — a
 * statement's run/all/first/raw, or a batch — is one subrequest in
 * production, so each is counted here, with its SQL, for the caller to
 * classify. A batch is one transaction, as in D1: any statement failing rolls
 * the whole batch back.
 *
 * Not a general D1: only what the job's code paths use (drizzle's d1 driver,
 * prepare/bind, batch). Blobs come back as Uint8Array, not D1's arrays of numbers.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";

export interface D1Call {
  readonly kind: "statement" | "batch";
  /** The statement's SQL, or each of the batch's. */
  readonly sql: readonly string[];
}

const toSqlite = (v: unknown): SQLInputValue => {
  if (v === undefined || v === null) return null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "string" || v instanceof Uint8Array) return v;
  throw new TypeError(`D1 cannot bind ${typeof v}`);
};

export interface SqliteD1 {
  readonly d1: D1Database;
  /** The same database, for the caller's own (uncounted) writes. */
  readonly sqlite: DatabaseSync;
  /** Every call made through `d1` so far. */
  readonly calls: D1Call[];
}

class Statement {
  constructor(
    private readonly owner: SqliteD1Impl,
    readonly sql: string,
    readonly params: readonly SQLInputValue[] = [],
  ) {}

  bind(...values: unknown[]): Statement {
    return new Statement(this.owner, this.sql, values.map(toSqlite));
  }

  /** Runs without counting: batch() counts itself once. */
  exec(): D1Result {
    const stmt: StatementSync = this.owner.sqlite.prepare(this.sql);
    const reader = stmt.columns().length > 0;
    const changesBefore = this.owner.totalChanges();
    const results = reader ? (stmt.all(...this.params) as Record<string, unknown>[]) : [];
    const info = reader ? undefined : stmt.run(...this.params);
    const changes = info ? Number(info.changes) : this.owner.totalChanges() - changesBefore;
    return {
      results,
      success: true,
      meta: {
        changes,
        last_row_id: info ? Number(info.lastInsertRowid) : 0,
        changed_db: changes > 0,
        duration: 0,
        rows_read: results.length,
        rows_written: changes,
        size_after: this.owner.size(),
      },
    } as unknown as D1Result;
  }

  async run(): Promise<D1Result> {
    this.owner.count({ kind: "statement", sql: [this.sql] });
    return this.exec();
  }

  async all(): Promise<D1Result> {
    return this.run();
  }

  async first(column?: string): Promise<unknown> {
    const row = (await this.run()).results[0] as Record<string, unknown> | undefined;
    if (row === undefined) return null;
    return column === undefined ? row : row[column];
  }

  async raw(opts?: { columnNames?: boolean }): Promise<unknown[][]> {
    this.owner.count({ kind: "statement", sql: [this.sql] });
    const stmt = this.owner.sqlite.prepare(this.sql);
    const names = stmt.columns().map((c) => c.name);
    if (names.length === 0) {
      stmt.run(...this.params);
      return opts?.columnNames ? [[]] : [];
    }
    stmt.setReturnArrays(true);
    const rows = stmt.all(...this.params) as unknown as unknown[][];
    return opts?.columnNames ? [names, ...rows] : rows;
  }
}

class SqliteD1Impl {
  readonly calls: D1Call[] = [];

  constructor(readonly sqlite: DatabaseSync) {}

  count(call: D1Call): void {
    this.calls.push(call);
  }

  totalChanges(): number {
    return Number((this.sqlite.prepare("SELECT total_changes() AS n").get() as { n: number }).n);
  }

  size(): number {
    const q = (p: string) => Number((this.sqlite.prepare(`PRAGMA ${p}`).get() as Record<string, number>)[p]);
    return q("page_count") * q("page_size");
  }

  prepare(sql: string): Statement {
    return new Statement(this, sql);
  }

  async batch(statements: Statement[]): Promise<D1Result[]> {
    this.count({ kind: "batch", sql: statements.map((s) => s.sql) });
    this.sqlite.exec("BEGIN");
    try {
      const out = statements.map((s) => s.exec());
      this.sqlite.exec("COMMIT");
      return out;
    } catch (err) {
      this.sqlite.exec("ROLLBACK");
      // As D1 words a failed batch (d1-retry.ts and the job read the message, not the class).
      throw new Error(`D1_ERROR: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async exec(sql: string): Promise<D1ExecResult> {
    this.count({ kind: "statement", sql: [sql] });
    this.sqlite.exec(sql);
    return { count: 1, duration: 0 };
  }
}

/** An in-memory database with migrations/*.sql applied in order (uncounted). */
export function sqliteD1(migrationsDir = "migrations"): SqliteD1 {
  const sqlite = new DatabaseSync(":memory:");
  sqlite.exec("PRAGMA foreign_keys = ON");
  for (const f of readdirSync(migrationsDir)
    .filter((n) => n.endsWith(".sql"))
    .sort()) {
    sqlite.exec(readFileSync(join(migrationsDir, f), "utf8"));
  }
  const impl = new SqliteD1Impl(sqlite);
  return { d1: impl as unknown as D1Database, sqlite, calls: impl.calls };
}
