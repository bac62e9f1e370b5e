/**
 * Where the ETL's time goes (bench/gap.ts): the floor worker (bench/floor/worker.ts)
 * and, beside it in the same local D1, the product's own load statements
 * (src/db/load.ts chunksStatements) sent straight to D1 from inside the Worker —
 * no queue — and the Worker-side transform alone. Not part of the product.
 *
 *   POST /data?split=S             body: the split's labels (one byte each) then its raw pixels; kept in memory
 *   POST /floor?…                  the floor worker's fill, after dropping every earlier copy (untimed)
 *   POST /gap?variant=V&perTransaction=N
 *       V = product   chunksStatements as the consumer sends them: ledger row, guarded INSERTs
 *                     (packed hex, unhex(replace(…))), progress, run state and ledger read
 *           noguard   the same statements, the INSERTs' two EXISTS guards replaced by `WHERE true`
 *           inserts   only the unguarded INSERTs (no ledger, progress, state or ledger read)
 *           plainhex  those INSERTs with plain hex parameters decoded by unhex(column3)
 *           transport those INSERTs with their packed hex bound and parsed into the VALUES list,
 *                     but randomblob(3136) stored instead of decoding it: the parameters' way
 *                     into SQLite without unhex(replace(…))
 *   POST /transform                the consumer's Worker-side work for all chunks, no D1
 *
 * Rows go into fashion-mnist's shadow tables (the product's own DDL); each fill first
 * drops whatever any variant left, so every fill starts from the same database.
 * Timing: workerd's clock only moves at I/O (Date.now() is frozen while JavaScript
 * runs), so CPU-only spans are closed by a zero-delay timer (`tick`).
 */
import floor from "../floor/worker";
import type { Statement } from "../../src/db/batch";
import { chunksStatements, type ChunkRows } from "../../src/db/load";
import { chunkDigest } from "../../src/codec/digest";
import { float32LE, normalise, pixelsToPackedHex, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../../src/codec/transform";
import { createImageTableSql, shadowTable } from "../../src/db/tables";
import { SPLITS, type Split } from "../../src/core/datasets";

interface GapEnv {
  readonly DB: D1Database;
}

const DATASET = "fashion-mnist";
const PPI = 784;
const PIXEL_BYTES = PPI * 4;
/** The product's CHUNK_SIZE and rows per INSERT (wrangler.toml, config.ts: 99 → 2 INSERTs of 80). */
const CHUNK = 160;
const ROWS_PER_STATEMENT = 99;

export type GapVariant = "product" | "noguard" | "inserts" | "plainhex" | "transport";
const VARIANTS: readonly GapVariant[] = ["product", "noguard", "inserts", "plainhex", "transport"];

const data: Partial<Record<Split, { labels: Uint8Array; pixels: Uint8Array }>> = {};
/** The chunks in the producer's order (train then test), with their digests (computed once, untimed). */
let chunks: ChunkRows[] | undefined;

const tick = async (): Promise<number> => {
  await new Promise((r) => setTimeout(r, 0));
  return Date.now();
};

async function allChunks(): Promise<ChunkRows[]> {
  if (chunks) return chunks;
  const out: ChunkRows[] = [];
  for (const split of SPLITS) {
    const d = data[split];
    if (!d) throw new Error(`no data for ${split}: POST /data first`);
    for (let start = 0; start < d.labels.length; start += CHUNK) {
      const end = Math.min(start + CHUNK, d.labels.length);
      const labels = d.labels.subarray(start, end);
      const pixels = d.pixels.subarray(start * PPI, end * PPI);
      out.push({
        dataset: DATASET,
        split,
        start,
        labels,
        pixels,
        pixelsPerImage: PPI,
        digest: await chunkDigest(labels, pixels),
      });
    }
  }
  chunks = out;
  return out;
}

/** Drop every image table and view a fill may have left (floor's and the shadows), and the bench's runs. */
async function cleanup(db: D1Database): Promise<void> {
  const { results } = await db
    .prepare(
      "SELECT type, name FROM sqlite_master WHERE (name LIKE 'floor\\_%' ESCAPE '\\' OR name LIKE 'images\\_\\_%\\_\\_next' ESCAPE '\\' OR name LIKE 'images\\_\\_floor\\_%' ESCAPE '\\') AND type IN ('view', 'table') ORDER BY type = 'table'",
    )
    .all<{ type: string; name: string }>();
  await db.batch([
    ...results.map((r) => db.prepare(`DROP ${r.type === "view" ? "VIEW" : "TABLE"} ${r.name}`)),
    db.prepare("DELETE FROM run_chunks WHERE run_id LIKE 'gap-%'"),
    db.prepare("DELETE FROM runs WHERE id LIKE 'gap-%'"),
  ]);
}

const GUARDS = /\nWHERE EXISTS \(SELECT 1 FROM runs [^\n]*\n {2}AND EXISTS \(SELECT 1 FROM run_chunks [^\n]*\n/;
const PACKED_DECODE = `unhex(replace(column3, '${ZERO_PIXEL}', '${ZERO_PIXEL_HEX}'))`;

/** The variant's statements for one transaction, from the product's own. */
function statementsFor(variant: GapVariant, runId: string, group: readonly ChunkRows[], now: string): Statement[] {
  const product = chunksStatements(runId, group, ROWS_PER_STATEMENT, now);
  if (variant === "product") return product;
  const unguard = (s: Statement): Statement => {
    if (!s.sql.startsWith("INSERT INTO images__")) return s;
    const sql = s.sql.replace(GUARDS, "\nWHERE true\n");
    if (sql === s.sql) throw new Error("guards not found in the product's INSERT");
    // ?1 (the run id) is no longer named: bind it anyway, as an unnamed parameter slot is still numbered.
    return { sql, params: s.params };
  };
  const unguarded = product.map(unguard);
  if (variant === "noguard") return unguarded;
  const inserts = unguarded.filter((s) => s.sql.startsWith("INSERT INTO images__"));
  if (variant === "inserts") return inserts;
  if (variant === "transport")
    return inserts.map((s) => ({ sql: s.sql.replace(PACKED_DECODE, "randomblob(3136)"), params: s.params }));
  return inserts.map((s) => ({
    sql: s.sql.replace(PACKED_DECODE, "unhex(column3)"),
    params: s.params.map((p, i) => (i === 0 ? p : (p as string).replaceAll(ZERO_PIXEL, ZERO_PIXEL_HEX))),
  }));
}

export type GapResult = Awaited<ReturnType<typeof gap>>;
export type TransformResult = Awaited<ReturnType<typeof transform>>;

async function gap(url: URL, db: D1Database) {
  const variant = url.searchParams.get("variant") as GapVariant;
  if (!VARIANTS.includes(variant)) throw new Error(`variant must be one of ${VARIANTS.join(", ")}`);
  const perTransaction = Number(url.searchParams.get("perTransaction") ?? 640);
  if (!Number.isSafeInteger(perTransaction) || perTransaction % CHUNK !== 0)
    throw new Error("perTransaction: a multiple of 160");
  const all = await allChunks();

  // Untimed: a fresh database state, a loading run, empty shadow tables.
  await cleanup(db);
  const runId = `gap-${crypto.randomUUID()}`;
  const now = new Date().toISOString();
  const counts = { train: data.train!.labels.length, test: data.test!.labels.length };
  await db.batch([
    db
      .prepare(
        `INSERT INTO runs (id, trigger, source, status, dataset, train_expected, test_expected, chunks_total, created_at, updated_at)
VALUES (?1, 'cli', 'bench', 'loading', ?2, ?3, ?4, ?5, ?6, ?6)`,
      )
      .bind(runId, DATASET, counts.train, counts.test, all.length, now),
    ...SPLITS.map((s) => db.prepare(createImageTableSql(shadowTable(DATASET, s), PIXEL_BYTES))),
  ]);

  const per = perTransaction / CHUNK;
  let buildMs = 0;
  let batchMs = 0;
  let statements = 0;
  let transactions = 0;
  let rowsWritten = 0;
  let paramChars = 0;
  const t0 = await tick();
  for (let i = 0; i < all.length; i += per) {
    const group = all.slice(i, i + per);
    const b0 = await tick();
    const stmts = statementsFor(variant, runId, group, now);
    const prepared = stmts.map((s) => db.prepare(s.sql).bind(...s.params));
    const b1 = await tick();
    const results = await db.batch(prepared);
    const b2 = Date.now();
    buildMs += b1 - b0;
    batchMs += b2 - b1;
    statements += stmts.length;
    transactions++;
    for (const s of stmts) for (const p of s.params) if (typeof p === "string") paramChars += p.length;
    for (const r of results) rowsWritten += r.meta.rows_written ?? 0;
  }
  const seconds = (Date.now() - t0) / 1000;

  // Untimed: every row, at its size, and one row per split byte for byte.
  const check: Record<string, unknown> = {};
  let verified = true;
  for (const s of SPLITS) {
    const table = shadowTable(DATASET, s);
    const c = await db
      .prepare(`SELECT COUNT(*) AS n, SUM(length(pixels) = ${PIXEL_BYTES}) AS sized, MAX(idx) AS hi FROM ${table}`)
      .first<{ n: number; sized: number; hi: number }>();
    const k = Math.floor(counts[s] / 2) + 7;
    const row = await db
      .prepare(`SELECT label, hex(pixels) AS h FROM ${table} WHERE idx = ?1`)
      .bind(k)
      .first<{ label: number; h: string }>();
    const want = [...float32LE(normalise(data[s]!.pixels.subarray(k * PPI, (k + 1) * PPI)))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("")
      .toUpperCase();
    // `transport` stores randomblob(): its pixels are not the images'.
    const same = variant === "transport" || row?.h === want;
    const ok =
      c?.n === counts[s] &&
      c.sized === counts[s] &&
      c.hi === counts[s] - 1 &&
      same &&
      row?.label === data[s]!.labels[k];
    check[s] = { ...c, sample: ok };
    verified &&= ok;
  }
  return {
    variant,
    perTransaction,
    seconds,
    buildSeconds: buildMs / 1000,
    batchSeconds: batchMs / 1000,
    transactions,
    statements,
    rowsWritten,
    paramMB: paramChars / 1e6,
    verified,
    check,
  };
}

/** The consumer's Worker-side work for every chunk, without D1: each part over all chunks, timed on its own. */
async function transform(db: D1Database) {
  const all = await allChunks();
  const runId = "gap-transform";
  const now = new Date().toISOString();
  const parts: Record<string, number> = {};
  let sink = 0;
  const time = async (name: string, work: () => void | Promise<void>) => {
    const t0 = await tick();
    await work();
    parts[name] = ((await tick()) - t0) / 1000;
  };
  await time("packedHex", () => {
    for (const c of all) sink += pixelsToPackedHex(c.pixels, PPI).text.length;
  });
  await time("digest", async () => {
    for (const c of all) sink += (await chunkDigest(c.labels, c.pixels)).length;
  });
  // chunksStatements per delivery of 4 (packed hex included), then prepare + bind as runBatch does.
  await time("statements", () => {
    for (let i = 0; i < all.length; i += 4)
      sink += chunksStatements(runId, all.slice(i, i + 4), ROWS_PER_STATEMENT, now).length;
  });
  await time("statementsPrepared", () => {
    for (let i = 0; i < all.length; i += 4)
      sink += chunksStatements(runId, all.slice(i, i + 4), ROWS_PER_STATEMENT, now).map((s) =>
        db.prepare(s.sql).bind(...s.params),
      ).length;
  });
  return { parts, chunks: all.length, sink };
}

export default {
  async fetch(request: Request, env: GapEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/ready") return new Response("ok");
    try {
      if (request.method === "POST" && url.pathname === "/data") {
        const split = url.searchParams.get("split") as Split;
        if (!SPLITS.includes(split)) throw new Error("split?");
        const count = Number(url.searchParams.get("count"));
        const body = new Uint8Array(await request.arrayBuffer());
        if (body.length !== count * (1 + PPI)) throw new Error(`${body.length} bytes for ${count} images`);
        data[split] = { labels: body.slice(0, count), pixels: body.slice(count) };
        chunks = undefined;
        return Response.json({ split, count });
      }
      if (request.method === "POST" && url.pathname === "/floor") {
        await cleanup(env.DB);
        return floor.fetch(request, env);
      }
      if (request.method === "POST" && url.pathname === "/gap") return Response.json(await gap(url, env.DB));
      if (request.method === "POST" && url.pathname === "/transform") return Response.json(await transform(env.DB));
      if (url.pathname === "/clock") {
        // How workerd's clock moves: a 300 ms busy loop, read before and after a timer.
        const t0 = Date.now();
        const p0 = performance.now();
        let x = 0;
        const until = performance.now();
        for (let i = 0; i < 3e8; i++) x += i & 1;
        const t1 = Date.now();
        const t2 = await tick();
        return Response.json({ sameTurn: t1 - t0, afterTimer: t2 - t0, perf: performance.now() - p0, until, x });
      }
      return new Response("not found", { status: 404 });
    } catch (err) {
      return Response.json({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, { status: 500 });
    }
  },
};
