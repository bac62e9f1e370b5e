/**
 * The local D1 write floor, for the bench: what it costs local D1 alone (the
 * same workerd D1 the ETL writes to) to store Fashion-MNIST's 70,000 rows of
 * 3,136 bytes (60,000 train + 10,000 test) so that
 * `SELECT split, idx, label, pixels FROM <images>` returns them — with
 * `randomblob()` in SQL instead of pixels, so no transport, hex or JavaScript
 * is counted. Not part of the product: `npm run bench` runs it with its own
 * wrangler config and database.
 *
 *   POST /floor?layout=L&perTransaction=N&perStatement=M&mode=values|cte[&train=60000&test=10000]
 *     → { seconds, rows, transactions, statements, rowsWritten, rowsRead, bytes, verified }
 *
 * Layouts (the data contract — what the SELECT above returns — is the same for all):
 *  - `rowid`: the product's layout (src/db/tables.ts createImageTableSql, the
 *    very DDL): one rowid table per split, `idx INTEGER PRIMARY KEY` (the rowid
 *    itself, as the seed script's `id INTEGER PRIMARY KEY`), and a view
 *    `floor_images` exposing (split, idx, label, pixels): each row is one cell
 *    in one page, and there is no index to write.
 *  - `wor`: the product's table before the rowid layout (the WITHOUT ROWID
 *    `images_next` of migrations/0002), keyed (split, idx), kept to compare. A
 *    3,150-byte record does not fit a 4 KB leaf of a WITHOUT ROWID b-tree
 *    (SQLite keeps such records to ~1/4 of a page there), so each row is a leaf
 *    cell plus an overflow page.
 *  - `rowidpk`: one rowid table keyed PRIMARY KEY (split, idx): the rowid b-tree
 *    plus the automatic index on (split, idx), one more row written per row.
 *
 * Transactions: `perTransaction` rows per D1 batch (a batch is one transaction).
 * Statements: `mode=values` writes `perStatement` rows per INSERT from a VALUES
 * list (as the pipeline's INSERT carries its rows); `mode=cte` writes each
 * transaction's rows of a table with one INSERT … SELECT from a recursive CTE.
 */

import { createImageTableSql } from "../../src/db/tables";

interface FloorEnv {
  readonly DB: D1Database;
}

export type Layout = "wor" | "rowid" | "rowidpk";
export type Mode = "values" | "cte";
type Split = "train" | "test";

const CHECKS = {
  idx: "CHECK (idx >= 0)",
  label: "label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9)",
  pixels: "pixels BLOB    NOT NULL CHECK (length(pixels) = 3136)",
};

interface LayoutDef {
  /** DDL creating the layout, `floor_images` answering the contract's SELECT. */
  readonly create: readonly string[];
  /** The table a split's rows go to, and the columns an INSERT names (split first if it is stored). */
  readonly target: (split: Split) => { table: string; storesSplit: boolean };
}

/** The split tables of the `rowid` layout: named as createImageTableSql requires (`images__…`), dropped by dropAll. */
const rowidTable = (s: Split): string => `images__floor__${s}`;

const LAYOUTS: Record<Layout, LayoutDef> = {
  rowid: {
    create: [
      ...(["train", "test"] as const).map((s) => createImageTableSql(rowidTable(s), 3136)),
      `CREATE VIEW floor_images (split, idx, label, pixels) AS
  SELECT 'train', idx, label, pixels FROM ${rowidTable("train")}
  UNION ALL
  SELECT 'test', idx, label, pixels FROM ${rowidTable("test")}`,
    ],
    target: (s) => ({ table: rowidTable(s), storesSplit: false }),
  },
  // migrations/0002's images_next under another name: the same constraints, key and layout.
  wor: {
    create: [
      `CREATE TABLE floor_images (
  split  TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  idx    INTEGER NOT NULL ${CHECKS.idx},
  ${CHECKS.label},
  ${CHECKS.pixels},
  PRIMARY KEY (split, idx)
) WITHOUT ROWID`,
    ],
    target: () => ({ table: "floor_images", storesSplit: true }),
  },
  rowidpk: {
    create: [
      `CREATE TABLE floor_images (
  split  TEXT    NOT NULL CHECK (split IN ('train', 'test')),
  idx    INTEGER NOT NULL ${CHECKS.idx},
  ${CHECKS.label},
  ${CHECKS.pixels},
  PRIMARY KEY (split, idx)
)`,
    ],
    target: () => ({ table: "floor_images", storesSplit: true }),
  },
};

const param = (url: URL, name: string, fallback?: number): number => {
  const raw = url.searchParams.get(name);
  const n = raw === null ? fallback : Number(raw);
  if (n === undefined || !Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};

function choice<T extends string>(url: URL, name: string, options: readonly T[], fallback: T): T {
  const raw = url.searchParams.get(name) ?? fallback;
  if (!options.includes(raw as T)) throw new Error(`${name} must be one of ${options.join(", ")}`);
  return raw as T;
}

/** One INSERT of rows [from, to) of a split. */
function insertSql(layout: LayoutDef, split: Split, from: number, to: number, mode: Mode): string {
  const { table, storesSplit } = layout.target(split);
  const cols = storesSplit ? "split, idx, label, pixels" : "idx, label, pixels";
  const sel = storesSplit ? `'${split}', ` : "";
  if (mode === "cte")
    return `WITH RECURSIVE n(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM n WHERE i < ${to - 1})
INSERT INTO ${table} (${cols}) SELECT ${sel}i, i % 10, randomblob(3136) FROM n`;
  const values: string[] = [];
  for (let i = from; i < to; i++) values.push(`(${i},${i % 10})`);
  // `WHERE true`: SQLite's INSERT … SELECT needs it before an upsert clause; kept as the pipeline writes it.
  return `INSERT INTO ${table} (${cols}) SELECT ${sel}column1, column2, randomblob(3136) FROM (VALUES ${values.join(",")}) WHERE true`;
}

/** The read paths' query shapes (src/read/*), against `floor_images`. */
const READS = {
  /** GET /images/:split/:idx */
  point: "SELECT label, hex(pixels) AS hex FROM floor_images WHERE split = 'test' AND idx = 1234",
  /** One page of GET /export/train.npy (1,334 rows). */
  exportPage:
    "SELECT hex(pixels) FROM floor_images WHERE split = 'train' AND idx >= 30000 AND idx < 31334 ORDER BY idx",
  /** The labels of the test split (GET /export/test-labels.npy). */
  labels: "SELECT label FROM floor_images WHERE split = 'test' AND idx >= 0 AND idx < 10000 ORDER BY idx",
  /** A split's extent. */
  extent: "SELECT COUNT(*) AS n, MAX(idx) AS hi FROM floor_images WHERE split = 'test'",
};

/** Drop whatever an earlier fill left: views first, then tables. */
async function dropAll(db: D1Database): Promise<void> {
  const { results } = await db
    .prepare(
      "SELECT type, name FROM sqlite_master WHERE (name LIKE 'floor\\_%' ESCAPE '\\' OR name LIKE 'images\\_\\_floor\\_%' ESCAPE '\\') AND type IN ('view', 'table') ORDER BY type = 'table'",
    )
    .all<{ type: string; name: string }>();
  if (results.length === 0) return;
  await db.batch(results.map((r) => db.prepare(`DROP ${r.type === "view" ? "VIEW" : "TABLE"} ${r.name}`)));
}

async function fill(url: URL, db: D1Database) {
  const layoutName = choice(url, "layout", ["wor", "rowid", "rowidpk"] as const, "wor");
  const layout = LAYOUTS[layoutName];
  const mode = choice(url, "mode", ["values", "cte"] as const, "values");
  const counts: Record<Split, number> = { train: param(url, "train", 60_000), test: param(url, "test", 10_000) };
  const rows = counts.train + counts.test;
  const perTransaction = Math.min(param(url, "perTransaction", rows), rows);
  // A VALUES tuple is ≤ 10 bytes: 5,000 of them stay well inside D1's 100 KB statement.
  const perStatement = Math.min(param(url, "perStatement", 99), 5_000);

  // As the pipeline's swap does: the previous copy is dropped, a fresh layout created (untimed).
  await dropAll(db);
  await db.batch(layout.create.map((sql) => db.prepare(sql)));

  // The rows in order, train then test, cut into transactions of perTransaction rows.
  const ranges: { split: Split; from: number; to: number }[] = [];
  for (const split of ["train", "test"] as const) ranges.push({ split, from: 0, to: counts[split] });
  const transactions: string[][] = [];
  let current: string[] = [];
  let room = perTransaction;
  for (const r of ranges) {
    let at = r.from;
    while (at < r.to) {
      const take = Math.min(room, r.to - at);
      // A transaction's rows of one table: one CTE statement, or VALUES statements of perStatement rows.
      if (mode === "cte") current.push(insertSql(layout, r.split, at, at + take, mode));
      else
        for (let s = at; s < at + take; s += perStatement)
          current.push(insertSql(layout, r.split, s, Math.min(s + perStatement, at + take), mode));
      at += take;
      room -= take;
      if (room === 0) {
        transactions.push(current);
        current = [];
        room = perTransaction;
      }
    }
  }
  if (current.length > 0) transactions.push(current);

  let rowsWritten = 0;
  let rowsRead = 0;
  let statements = 0;
  let bytes = 0;
  const started = Date.now();
  for (const sqls of transactions) {
    const results = await db.batch(sqls.map((sql) => db.prepare(sql)));
    statements += sqls.length;
    for (const r of results) {
      rowsWritten += r.meta.rows_written ?? 0;
      rowsRead += r.meta.rows_read ?? 0;
      bytes = (r.meta.size_after as number | undefined) ?? bytes;
    }
  }
  const seconds = (Date.now() - started) / 1000;

  // Untimed: the contract's SELECT answers every row, per split, at the right size.
  const { results: check } = await db
    .prepare(
      "SELECT split, COUNT(*) AS n, MIN(idx) AS lo, MAX(idx) AS hi, SUM(length(pixels) = 3136) AS sized, SUM(label = idx % 10) AS labelled FROM floor_images GROUP BY split",
    )
    .all<{ split: Split; n: number; lo: number; hi: number; sized: number; labelled: number }>();
  const verified = (["train", "test"] as const).every((s) => {
    const c = check.find((x) => x.split === s);
    const n = counts[s];
    return c !== undefined && c.n === n && c.lo === 0 && c.hi === n - 1 && c.sized === n && c.labelled === n;
  });
  // Untimed: what the read paths' queries cost in this layout (through the view for `rowid`).
  const readCosts: Record<string, { rowsRead: number | null; rows: number; ms: number; chars?: number }> = {};
  const direct = layout.target("train");
  const reads = {
    ...READS,
    // The same page from the split's own table, where the layout has one: no view in between.
    ...(direct.storesSplit
      ? {}
      : {
          exportPageTable: `SELECT hex(pixels) FROM ${direct.table} WHERE idx >= 30000 AND idx < 31334 ORDER BY idx`,
          labelsTable: `SELECT label FROM ${layout.target("test").table} WHERE idx >= 0 AND idx < 10000 ORDER BY idx`,
        }),
  };
  for (const [name, sql] of Object.entries(reads)) {
    const t0 = Date.now();
    const r = await db.prepare(sql).all();
    readCosts[name] = { rowsRead: r.meta.rows_read ?? 0, rows: r.results.length, ms: Date.now() - t0 };
  }
  // Opt-in (readFull=1, bench/floor/run.ts --read-full): the whole train split as the export
  // reads it, 45 pages of hex(pixels) in idx order, and the same as BLOBs: D1's side of GET /export/train.npy.
  if (url.searchParams.get("readFull") === "1") {
    const source = direct.storesSplit ? "floor_images WHERE split = 'train' AND" : `${direct.table} WHERE`;
    for (const [name, column] of [
      ["trainHex", "hex(pixels)"],
      ["trainBlob", "pixels"],
    ] as const) {
      const t0 = Date.now();
      let rows = 0;
      let chars = 0;
      for (let from = 0; from < counts.train; from += 1334) {
        const r = await db
          .prepare(`SELECT ${column} FROM ${source} idx >= ?1 AND idx < ?2 ORDER BY idx`)
          .bind(from, Math.min(from + 1334, counts.train))
          .raw<[string | number[] | ArrayBuffer]>();
        rows += r.length;
        if (typeof r[0]?.[0] === "string") for (const [h] of r) chars += (h as string).length;
      }
      // raw() as the export calls it, which drops D1's meta: rows read not known here.
      readCosts[name] = { rowsRead: null, rows, ms: Date.now() - t0, chars };
    }
  }
  return {
    layout: layoutName,
    mode,
    perTransaction,
    perStatement: mode === "cte" ? null : perStatement,
    seconds,
    rows,
    transactions: transactions.length,
    statements,
    rowsWritten,
    rowsRead,
    /** The database file after the fill (D1's size_after): the dropped copy's pages are reused, not returned. */
    bytes,
    verified,
    reads: readCosts,
  };
}

export type FloorResult = Awaited<ReturnType<typeof fill>>;

export default {
  async fetch(request: Request, env: FloorEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/ready") return new Response("ok");
    if (request.method !== "POST" || url.pathname !== "/floor") return new Response("not found", { status: 404 });
    try {
      return Response.json(await fill(url, env.DB));
    } catch (err) {
      return Response.json({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, { status: 500 });
    }
  },
};
