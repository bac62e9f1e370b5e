/**
 * The local D1 write floor, for the bench: what it costs local D1 alone to
 * write Fashion-MNIST's 70,000 rows of 3,136 bytes into a table shaped like
 * `images` — the same transactions as the pipeline's (one per delivery of
 * max_batch_size chunks, ≤ 99 rows per INSERT) but with `randomblob()` in SQL
 * instead of pixels, so no transport, hex or JavaScript is counted. Not part of
 * the product: `npm run bench` runs it with its own wrangler config and database.
 *
 *   POST /floor?rows=70000&perTransaction=640&perStatement=99  →  { seconds, rows, transactions }
 */

import { CREATE_SHADOW_SQL } from "../../src/db/load";

interface FloorEnv {
  readonly DB: D1Database;
}

// The shadow table's own definition, under another name: the same constraints, key and layout.
const TABLE = CREATE_SHADOW_SQL.replace("CREATE TABLE images_next", "CREATE TABLE floor_images");

const param = (url: URL, name: string): number => {
  const n = Number(url.searchParams.get(name));
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};

export default {
  async fetch(request: Request, env: FloorEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/ready") return new Response("ok");
    if (request.method !== "POST" || url.pathname !== "/floor") return new Response("not found", { status: 404 });
    const rows = param(url, "rows");
    const perTransaction = param(url, "perTransaction");
    const perStatement = Math.min(param(url, "perStatement"), 99);
    // As the pipeline's swap does: the previous copy is dropped, a fresh table filled.
    await env.DB.batch([env.DB.prepare("DROP TABLE IF EXISTS floor_images"), env.DB.prepare(TABLE)]);
    const started = Date.now();
    let transactions = 0;
    for (let first = 0; first < rows; first += perTransaction) {
      const statements: D1PreparedStatement[] = [];
      const end = Math.min(first + perTransaction, rows);
      for (let from = first; from < end; from += perStatement) {
        const values: string[] = [];
        for (let i = from; i < Math.min(from + perStatement, end); i++) values.push(`('train',${i},${i % 10})`);
        statements.push(
          env.DB.prepare(
            `INSERT INTO floor_images (split, idx, label, pixels) SELECT column1, column2, column3, randomblob(3136) FROM (VALUES ${values.join(",")}) WHERE true`,
          ),
        );
      }
      await env.DB.batch(statements);
      transactions++;
    }
    return Response.json({ seconds: (Date.now() - started) / 1000, rows, transactions });
  },
};
