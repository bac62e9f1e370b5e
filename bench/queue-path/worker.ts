/**
 * The queue path in parts (bench/queue-path.ts): the product Worker (src/index.ts) as
 * it is, under the product's own wrangler.toml (queues, D1, vars), except that the
 * chunk queue's consumer can be switched from the product's (consumeChunks) to one
 * that only acks. Not part of the product.
 *
 *   POST /__bench/mode?set=M   M = real     the product's queue handler for every queue (the default)
 *                                  capture  chunk messages are kept in memory (this run's output) and acked
 *                                  ack      chunk messages are only acked
 *                              and resets the counters below
 *   POST /__bench/send         sends the captured messages into idx-etl-chunks as the producer does
 *                              (packBatches, sendBatch, contentType v8), one call after another
 *   GET  /__bench/state        counters: chunk messages acked by the bench consumer, deliveries, times
 *   POST /__bench/reset        fails every active run (after an error, so the next one may start)
 *   anything else              the product's fetch handler (POST /runs, GET /runs/:id …)
 *
 * The job queue and the dead-letter queue always go to the product's handler.
 * The mode is a module variable: Miniflare runs the fetch and queue handlers in one isolate.
 * Times are workerd's clock (Date.now(), which moves at I/O), in ms since the mode was set.
 */
import product from "../../src/index";
import { QUEUES } from "../../src/pipeline/config";
import { packBatches } from "../../src/pipeline/plan";
import { activeRun } from "../../src/db/run-reads";
import { database } from "../../src/db/database";
import { failRun } from "../../src/db/runs";
import type { ChunkMessage } from "../../src/pipeline/messages";

type Mode = "real" | "capture" | "ack";

let mode: Mode = "real";
let captured: ChunkMessage[] = [];
let t0 = Date.now();
/** The bench counters at the start of a round. */
const freshCounters = () => ({
  /** Chunk messages acked by the bench consumer (capture/ack). */
  acked: 0,
  /** Chunk-queue deliveries (batches) seen, whatever the mode. */
  deliveries: 0,
  firstDeliveryMs: NaN,
  /** When the last chunk delivery returned (after the product's consumer, in real mode). */
  lastDeliveryEndMs: NaN,
  sendStartMs: NaN,
  sendEndMs: NaN,
  sendBatches: 0,
  /** Time inside chunk deliveries' handler, summed (ms). */
  handlerMs: 0,
  /** Of which inside D1's batch() (real mode; ms). */
  d1BatchMs: 0,
  d1Batches: 0,
  /** The last delivery's handler time (the completion check and swap, in real mode; ms). */
  lastHandlerMs: 0,
});
const counters = freshCounters();

/** env.DB with its batch() timed, for the chunk consumer (real mode). */
const timedDb = (db: D1Database): D1Database =>
  new Proxy(db, {
    get(target, prop) {
      if (prop === "batch")
        return async (statements: D1PreparedStatement[]) => {
          const t = Date.now();
          try {
            return await target.batch(statements);
          } finally {
            counters.d1BatchMs += Date.now() - t;
            counters.d1Batches++;
          }
        };
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });

const since = () => Date.now() - t0;

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/__bench/mode" && request.method === "POST") {
        const m = url.searchParams.get("set") as Mode;
        if (!["real", "capture", "ack"].includes(m)) throw new Error("set=real|capture|ack");
        mode = m;
        if (m === "capture") captured = [];
        t0 = Date.now();
        Object.assign(counters, freshCounters());
        return Response.json({ mode, captured: captured.length });
      }
      if (url.pathname === "/__bench/send" && request.method === "POST") {
        if (captured.length === 0) throw new Error("nothing captured");
        const batches = packBatches(captured);
        counters.sendStartMs = since();
        for (const b of batches) {
          await env.CHUNKS.sendBatch(b.map((body) => ({ body, contentType: "v8" as const })));
          counters.sendBatches++;
        }
        counters.sendEndMs = since();
        return Response.json({ messages: captured.length, batches: batches.length });
      }
      if (url.pathname === "/__bench/state") {
        return Response.json({ mode, captured: captured.length, ...counters, nowMs: since() });
      }
      if (url.pathname === "/__bench/reset" && request.method === "POST") {
        const db = database(env.DB);
        const failed: string[] = [];
        for (let run = await activeRun(db); run; run = await activeRun(db)) {
          await failRun(db, run.id, "bench reset");
          failed.push(run.id);
        }
        return Response.json({ failed });
      }
    } catch (err) {
      return Response.json({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, { status: 500 });
    }
    return product.fetch(request, env, ctx);
  },

  async queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
    if (batch.queue !== QUEUES.chunks) return product.queue(batch, env);
    counters.deliveries++;
    const start = Date.now();
    if (Number.isNaN(counters.firstDeliveryMs)) counters.firstDeliveryMs = since();
    if (mode === "real") {
      await product.queue(batch, { ...env, DB: timedDb(env.DB) });
    } else {
      for (const msg of batch.messages) {
        if (mode === "capture") captured.push(msg.body as ChunkMessage);
        msg.ack();
        counters.acked++;
      }
    }
    counters.lastDeliveryEndMs = since();
    counters.lastHandlerMs = Date.now() - start;
    counters.handlerMs += counters.lastHandlerMs;
  },
} satisfies ExportedHandler<Env>;
