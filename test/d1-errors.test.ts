/** classifyD1Error: D1's documented error texts, and the errors real local D1 throws, each to its kind. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { classifyD1Error, isSqlError, type D1ErrorKind } from "../src/db/d1-errors";

/** What real local D1 throws for `run`. */
async function thrown(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error("expected D1 to refuse");
}

describe("classifyD1Error", () => {
  it("calls transient what D1's error list says to retry", () => {
    for (const m of [
      "D1_ERROR: Network connection lost.",
      "D1_ERROR: D1 DB is overloaded. Requests queued for too long.",
      "D1_ERROR: D1 DB is overloaded. Too many requests queued.",
      "D1_ERROR: Internal error while starting up D1 DB storage caused object to be reset.",
      "D1_ERROR: Internal error in D1 DB storage caused object to be reset.",
      "D1_ERROR: D1 DB reset because its code was updated.",
      "D1_ERROR: Cannot resolve D1 DB due to transient issue on remote node.",
      "D1_ERROR: Can't read from request stream because client disconnected.",
    ])
      expect(classifyD1Error(new Error(m)), m).toBe("transient");
    // Before wrangler 3.1.1 the detail was in `cause`.
    expect(classifyD1Error(new Error("D1_ERROR", { cause: new Error("Network connection lost.") }))).toBe("transient");
  });

  it("calls too-large what the docs blame on the query itself, and nothing of it transient", () => {
    for (const m of [
      "D1_ERROR: D1 DB storage operation exceeded timeout which caused object to be reset.",
      "D1_ERROR: D1 DB's isolate exceeded its memory limit and was reset.",
      "D1_ERROR: D1 DB exceeded its CPU time limit and was reset.",
      "D1_ERROR: string or blob too big: SQLITE_TOOBIG",
    ])
      expect(classifyD1Error(new Error(m)), m).toBe("too-large");
  });

  it("tells constraint, missing-table and other SQL errors apart, as worded", () => {
    const cases: [string, D1ErrorKind][] = [
      ["D1_ERROR: UNIQUE constraint failed: dataset_swaps.run_id: SQLITE_CONSTRAINT", "constraint"],
      ["D1_ERROR: CHECK constraint failed: run_status = 'loading': SQLITE_CONSTRAINT", "constraint"],
      ["D1_ERROR: no such table: images__fashion_mnist__train__shadow: SQLITE_ERROR", "missing-table"],
      ['D1_ERROR: near "INSERTZ": syntax error at offset 0: SQLITE_ERROR', "sql"],
      ["D1_TYPE_ERROR: Type 'undefined' not supported for value 'undefined'", "sql"],
      ["internal error", "unknown"],
      ["queue send failed", "unknown"],
    ];
    for (const [m, kind] of cases) expect(classifyD1Error(new Error(m)), m).toBe(kind);
    expect(classifyD1Error(undefined)).toBe("unknown");
    expect(classifyD1Error("D1_ERROR: Network connection lost.")).toBe("transient");
  });

  it("classifies what real local D1 throws", async () => {
    const db = env.DB;
    await db
      .prepare("CREATE TABLE IF NOT EXISTS classify_probe (k INTEGER PRIMARY KEY, v INTEGER CHECK (v > 0))")
      .run();
    await db.prepare("INSERT OR REPLACE INTO classify_probe (k, v) VALUES (1, 1)").run();
    const cases: [() => Promise<unknown>, D1ErrorKind][] = [
      [() => db.prepare("SELECT * FROM no_such_table_here").all(), "missing-table"],
      [() => db.prepare("INSERTZ INTO classify_probe VALUES (2, 2)").run(), "sql"],
      [() => db.prepare("SELECT no_such_column FROM classify_probe").all(), "sql"],
      [() => db.prepare("INSERT INTO classify_probe (k, v) VALUES (1, 1)").run(), "constraint"],
      [() => db.prepare("INSERT INTO classify_probe (k, v) VALUES (3, -1)").run(), "constraint"],
      [() => db.batch([db.prepare("SELECT 1"), db.prepare("SELECT * FROM no_such_table_here")]), "missing-table"],
    ];
    for (const [run, kind] of cases) {
      const err = await thrown(run);
      expect(classifyD1Error(err), String(err)).toBe(kind);
    }
    await db.prepare("DROP TABLE classify_probe").run();
  });

  it("counts missing tables among the SQL errors no retry mends", () => {
    expect(isSqlError("sql")).toBe(true);
    expect(isSqlError("missing-table")).toBe(true);
    for (const kind of ["transient", "too-large", "constraint", "unknown"] as const)
      expect(isSqlError(kind)).toBe(false);
  });
});
