/**
 * The floors the bench divides the ETL by: what it takes local D1 to store
 * Fashion-MNIST's 70,000 rows in the product's layout (one rowid table per
 * split, the product's own DDL), nothing else running. Not deployed.
 *
 *   POST /data?split=S&count=N   body: the split's N labels, then its N × 784 raw pixels (kept in memory)
 *   POST /fill?kind=rows|blob&perTransaction=N[&perStatement=M][&inflight=K]
 *     → FillResult, timed from the first statement built to the last commit
 *   POST /archive?file=F         body: one of the four gzip archives as served (kept in memory)
 *   POST /stack?part=archives|queue|mirror&chunk=N → StackResult: what the required stack adds (stack.ts),
 *     N images per chunk message
 *
 * kind=rows (the Worker floor): the real rows, encoded as the product encodes
 *   them (float32 as packed hex, transform.ts pixelsToPackedHex, decoded by
 *   `unhex(replace(…))` in SQL), built and bound in this Worker: what any
 *   Worker storing these rows must pay. `perStatement` rows per INSERT (at
 *   most 100 bound parameters), `perTransaction` rows per D1 batch, `inflight`
 *   batches awaited together (the next transaction is encoded while D1 writes).
 * kind=blob: `randomblob(3136)` in SQL, one INSERT … SELECT from a recursive
 *   CTE per table and transaction: SQLite's own writes, no bytes crossing the
 *   binding. A floor no Worker can reach, kept for context.
 */
import { createImageTableSql } from "../../src/db/tables";
import { pixelsToPackedHex, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../../src/codec/transform";
import { STACK_PARTS, type StackPart } from "./parts";
import { consume, keepArchive, stackPart, type ChunkBody, type StackEnv } from "./stack";

interface FloorEnv extends StackEnv {
  readonly DB: D1Database;
}

type Split = "train" | "test";
const SPLITS: readonly Split[] = ["train", "test"];
const PIXELS = 784;
const PIXEL_BYTES = PIXELS * 4;
const MAX_PARAMS = 100;

const table = (s: Split): string => `images__floor__${s}`;
const DECODE = `unhex(replace(column3, '${ZERO_PIXEL}', '${ZERO_PIXEL_HEX}'))`;

const data: Partial<Record<Split, { labels: Uint8Array; pixels: Uint8Array }>> = {};

export interface FillResult {
  readonly kind: "rows" | "blob";
  readonly perTransaction: number;
  readonly perStatement: number | null;
  readonly inflight: number;
  readonly seconds: number;
  /** Of which building the statements: encoding, binding (kind=rows). */
  readonly buildSeconds: number;
  readonly rows: number;
  readonly transactions: number;
  readonly statements: number;
  /** Characters of bound parameter text (kind=rows). */
  readonly textBytes: number;
  readonly rowsWritten: number;
  readonly verified: boolean;
}

function positive(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  const n = raw === null ? fallback : Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

/** One transaction's rows: [from, to) of a split, in the producer's order (train, then test). */
interface Range {
  readonly split: Split;
  readonly from: number;
  readonly to: number;
}

function transactions(counts: Record<Split, number>, perTransaction: number): Range[][] {
  const out: Range[][] = [];
  let current: Range[] = [];
  let room = perTransaction;
  for (const split of SPLITS) {
    for (let at = 0; at < counts[split];) {
      const take = Math.min(room, counts[split] - at);
      current.push({ split, from: at, to: at + take });
      at += take;
      room -= take;
      if (room === 0) {
        out.push(current);
        current = [];
        room = perTransaction;
      }
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** The real rows of `r` as INSERTs of at most perStatement rows, pixels bound as packed hex. */
function rowStatements(db: D1Database, r: Range, perStatement: number): { stmts: D1PreparedStatement[]; text: number } {
  const d = data[r.split]!;
  const hex = pixelsToPackedHex(d.pixels.subarray(r.from * PIXELS, r.to * PIXELS), PIXELS);
  const stmts: D1PreparedStatement[] = [];
  let text = 0;
  for (let s = r.from; s < r.to; s += perStatement) {
    const n = Math.min(perStatement, r.to - s);
    const values: string[] = [];
    const params: string[] = [];
    for (let i = 0; i < n; i++) {
      const k = s - r.from + i;
      values.push(`(${s + i},${d.labels[s + i]!},?${i + 1})`);
      params.push(hex.text.slice(hex.starts[k], hex.starts[k + 1]));
      text += params[i]!.length;
    }
    const sql = `INSERT INTO ${table(r.split)} (idx, label, pixels) SELECT column1, column2, ${DECODE} FROM (VALUES ${values.join(",")})`;
    stmts.push(db.prepare(sql).bind(...params));
  }
  return { stmts, text };
}

const blobStatement = (db: D1Database, r: Range): D1PreparedStatement =>
  db.prepare(`WITH RECURSIVE n(i) AS (SELECT ${r.from} UNION ALL SELECT i + 1 FROM n WHERE i < ${r.to - 1})
INSERT INTO ${table(r.split)} (idx, label, pixels) SELECT i, i % 10, randomblob(${PIXEL_BYTES}) FROM n`);

/** Untimed: every row there at its size, labels as sent; for kind=rows, some rows byte for byte. */
async function verify(db: D1Database, kind: "rows" | "blob", counts: Record<Split, number>): Promise<boolean> {
  for (const split of SPLITS) {
    const n = counts[split];
    const c = await db
      .prepare(
        `SELECT COUNT(*) AS n, MAX(idx) AS hi, SUM(length(pixels) = ${PIXEL_BYTES}) AS sized, SUM(label) AS labels FROM ${table(split)}`,
      )
      .first<{ n: number; hi: number; sized: number; labels: number }>();
    if (!c || c.n !== n || c.hi !== n - 1 || c.sized !== n) return false;
    const d = data[split];
    if (kind === "blob" || !d) continue;
    if (c.labels !== d.labels.reduce((a, b) => a + b, 0)) return false;
    for (const idx of [0, n >> 1, n - 1]) {
      const row = await db
        .prepare(`SELECT hex(pixels) AS hex FROM ${table(split)} WHERE idx = ?1`)
        .bind(idx)
        .first<{ hex: string }>();
      const one = pixelsToPackedHex(d.pixels.subarray(idx * PIXELS, (idx + 1) * PIXELS), PIXELS).text;
      if (row?.hex.toLowerCase() !== one.replaceAll(ZERO_PIXEL, ZERO_PIXEL_HEX)) return false;
    }
  }
  return true;
}

async function fill(url: URL, db: D1Database): Promise<FillResult> {
  const kind = url.searchParams.get("kind");
  if (kind !== "rows" && kind !== "blob") throw new Error("kind must be rows or blob");
  if (kind === "rows" && (!data.train || !data.test)) throw new Error("POST /data for both splits first");
  const counts = { train: data.train?.labels.length ?? 60_000, test: data.test?.labels.length ?? 10_000 };
  const rows = counts.train + counts.test;
  const perTransaction = Math.min(positive(url, "perTransaction", rows), rows);
  const perStatement = Math.min(positive(url, "perStatement", MAX_PARAMS), MAX_PARAMS);
  const inflight = positive(url, "inflight", 1);

  // Untimed, as a run's claim does: the previous copy dropped, fresh tables.
  await db.batch(SPLITS.map((s) => db.prepare(`DROP TABLE IF EXISTS ${table(s)}`)));
  await db.batch(SPLITS.map((s) => db.prepare(createImageTableSql(table(s), PIXEL_BYTES))));

  const plan = transactions(counts, perTransaction);
  let statements = 0;
  let textBytes = 0;
  let rowsWritten = 0;
  let buildMs = 0;
  const build = (ranges: Range[]): D1PreparedStatement[] => {
    const t0 = performance.now();
    const stmts = ranges.flatMap((r) => {
      if (kind === "blob") return [blobStatement(db, r)];
      const built = rowStatements(db, r, perStatement);
      textBytes += built.text;
      return built.stmts;
    });
    buildMs += performance.now() - t0;
    return stmts;
  };
  const commit = async (stmts: D1PreparedStatement[]): Promise<void> => {
    statements += stmts.length;
    for (const r of await db.batch(stmts)) rowsWritten += r.meta.rows_written ?? 0;
  };
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (const ranges of plan) {
    pending.push(commit(build(ranges)));
    if (pending.length >= inflight) await pending.shift();
  }
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  return {
    kind,
    perTransaction,
    perStatement: kind === "rows" ? perStatement : null,
    inflight,
    seconds,
    buildSeconds: buildMs / 1000,
    rows,
    transactions: plan.length,
    statements,
    textBytes,
    rowsWritten,
    verified: await verify(db, kind, counts),
  };
}

async function receive(url: URL, body: ArrayBuffer): Promise<void> {
  const split = url.searchParams.get("split") as Split;
  if (!SPLITS.includes(split)) throw new Error("split must be train or test");
  const count = positive(url, "count", 1);
  if (body.byteLength !== count * (1 + PIXELS))
    throw new Error(`expected ${count} labels and images, got ${body.byteLength} bytes`);
  const bytes = new Uint8Array(body);
  data[split] = { labels: bytes.subarray(0, count), pixels: bytes.subarray(count) };
}

export default {
  async fetch(request: Request, env: FloorEnv): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/ready") return new Response("ok");
      if (request.method === "POST" && url.pathname === "/data") {
        await receive(url, await request.arrayBuffer());
        return new Response("ok");
      }
      if (request.method === "POST" && url.pathname === "/fill") return Response.json(await fill(url, env.DB));
      if (request.method === "POST" && url.pathname === "/archive") {
        keepArchive(url.searchParams.get("file") ?? "", new Uint8Array(await request.arrayBuffer()));
        return new Response("ok");
      }
      if (request.method === "POST" && url.pathname === "/stack") {
        const part = url.searchParams.get("part") as StackPart;
        if (!STACK_PARTS.includes(part)) throw new Error(`part must be one of ${STACK_PARTS.join(", ")}`);
        if (!data.train || !data.test) throw new Error("POST /data for both splits first");
        const shape = { chunk: positive(url, "chunk", 160), pixelsPerImage: PIXELS };
        return Response.json(await stackPart(part, env, [data.train.pixels, data.test.pixels], shape));
      }
      return new Response("not found", { status: 404 });
    } catch (err) {
      return Response.json({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, { status: 500 });
    }
  },
  queue: async (batch: MessageBatch<ChunkBody>): Promise<void> => consume(batch),
};
