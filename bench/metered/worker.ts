/**
 * The product Worker (src/index.ts) as `npm run bench` runs it, with meters for
 * the bill: every D1 query's `meta.rows_read` / `rows_written` (what D1 bills,
 * counted by the same SQLite layer locally as on Cloudflare), the Worker's
 * invocations per entry point and queue, the queue messages it writes with
 * their 64 KB billing units, and every call on the exports bucket (EXPORTS, R2)
 * by the class R2 bills it as, with the bytes put. Nothing the product does
 * changes: the meters only add up numbers the runtime already returns. Not
 * deployed; the bench bundles this file in place of src/index.ts with the main
 * wrangler.toml.
 *
 *   GET  /__bench/meter         → Meter (since the last reset)
 *   POST /__bench/meter/reset
 *   POST /__bench/scheduled?source=URL   the cron handler, with DEFAULT_SOURCE = URL
 *   GET  /__bench/export-jobs   → { done }: export jobs (pipeline/materialise.ts) that have returned, never reset
 *
 * A request with `x-bench-unmetered: 1` (the bench polling a run's status) is
 * served as usual but left out of the meters: its D1 calls are told apart by
 * AsyncLocalStorage (the bench's config copy adds the nodejs_als flag).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import product from "../../src/index";

/** The product's handlers, called with the runtime's arguments (src/index.ts declares fewer). */
const worker = product as unknown as Required<Pick<ExportedHandler<Env>, "fetch" | "scheduled" | "queue">>;

/** (Not exported: a Worker module exports only handlers.) Queues bills one operation per 64 KB (1 KB = 1,000 bytes) written, read or deleted. */
const QUEUE_OP_BYTES = 64_000;

export interface Meter {
  d1: { queries: number; rowsRead: number; rowsWritten: number; sizeAfter: number };
  invocations: { fetch: number; scheduled: number; queue: Record<string, number> };
  /** Messages delivered to consumers, and their 64 KB units (reads; a delete per message acked). */
  delivered: Record<string, { messages: number; units: number }>;
  /** Messages written by send/sendBatch, and their 64 KB units. */
  sent: Record<string, { messages: number; units: number }>;
  /**
   * Calls on the EXPORTS bucket as https://developers.cloudflare.com/r2/pricing/
   * classes them: A (put, list, createMultipartUpload, uploadPart, complete),
   * B (get, head), free (delete, abort); bytesPut: the size of each object put
   * (or completed from parts), as R2 reports it.
   */
  r2: { classA: number; classB: number; free: number; bytesPut: number };
}

const fresh = (): Meter => ({
  d1: { queries: 0, rowsRead: 0, rowsWritten: 0, sizeAfter: 0 },
  invocations: { fetch: 0, scheduled: 0, queue: {} },
  delivered: {},
  sent: {},
  r2: { classA: 0, classB: 0, free: 0, bytesPut: 0 },
});
let meter = fresh();
/** Export jobs whose queue invocation has returned, for the bench to wait on (bench/lib/etl.ts); not a meter. */
let exportJobsDone = 0;

/**
 * A message's 64 KB units as Queues counts them: its body (JSON, each byte
 * array by its length, as the v8 content type carries it) and ~100 bytes of
 * metadata.
 */
function units(body: unknown): number {
  let binary = 0;
  const json = JSON.stringify(body, (_key, value: unknown) => {
    if (!ArrayBuffer.isView(value)) return value;
    binary += value.byteLength;
    return undefined;
  });
  const bytes = new TextEncoder().encode(json ?? "").length + binary + 100;
  return Math.max(1, Math.ceil(bytes / QUEUE_OP_BYTES));
}

const add = (to: Record<string, { messages: number; units: number }>, queue: string, u: number) => {
  const e = (to[queue] ??= { messages: 0, units: 0 });
  e.messages++;
  e.units += u;
};

interface D1Meta {
  rows_read?: number;
  rows_written?: number;
  size_after?: number;
}

const unmetered = new AsyncLocalStorage<true>();

function count(results: unknown): void {
  if (unmetered.getStore()) return;
  for (const r of Array.isArray(results) ? results : [results]) {
    const meta = (r as { meta?: D1Meta } | null)?.meta;
    if (!meta) continue;
    meter.d1.queries++;
    meter.d1.rowsRead += meta.rows_read ?? 0;
    meter.d1.rowsWritten += meta.rows_written ?? 0;
    if (meta.size_after) meter.d1.sizeAfter = meta.size_after;
  }
}

const METERED = Symbol.for("idx-etl-bench.metered");

/**
 * Every D1 call (prepare().run/all/first/raw, batch, exec) ends in one of the
 * session's two senders (workerd's d1-api: `_sendOrThrow`, or `_queryOrThrow`
 * with d1_binding_jsrpc), whose answer carries each statement's meta, which
 * first() and raw() then drop. Wrapped once on the session's prototype.
 */
function meterD1(db: D1Database): void {
  const session = (db as unknown as { alwaysPrimarySession?: object }).alwaysPrimarySession;
  if (!session) throw new Error("bench meter: this workerd's D1 binding has no alwaysPrimarySession");
  let proto: Record<string | symbol, unknown> | null = Object.getPrototypeOf(session);
  while (proto && !Object.prototype.hasOwnProperty.call(proto, "_sendOrThrow")) proto = Object.getPrototypeOf(proto);
  if (!proto) throw new Error("bench meter: no _sendOrThrow on the D1 session");
  if (proto[METERED]) return;
  proto[METERED] = true;
  for (const name of ["_sendOrThrow", "_queryOrThrow"]) {
    const original = proto[name];
    if (typeof original !== "function") continue;
    proto[name] = async function (this: unknown, ...args: unknown[]) {
      const results = await (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
      count(results);
      return results;
    };
  }
}

function meteredQueue(queue: Queue, name: string): Queue {
  return {
    metrics: () => queue.metrics(),
    send: (body, options) => {
      add(meter.sent, name, units(body));
      return queue.send(body, options);
    },
    sendBatch: (messages, options) => {
      const list = [...messages];
      for (const m of list) add(meter.sent, name, units(m.body));
      return queue.sendBatch(list, options);
    },
  } as Queue;
}

/** R2's billing class of each R2Bucket / R2MultipartUpload method; methods not named make no request. */
const R2_CLASS: Record<string, "classA" | "classB" | "free"> = {
  put: "classA",
  list: "classA",
  createMultipartUpload: "classA",
  uploadPart: "classA",
  complete: "classA",
  get: "classB",
  head: "classB",
  delete: "free",
  abort: "free",
};

/** The size of the object a put or a multipart completion stored (null: an onlyIf precondition failed). */
function putBytes(result: unknown): number {
  const size = (result as { size?: unknown } | null)?.size;
  return typeof size === "number" ? size : 0;
}

/**
 * `target` (an R2Bucket, or an R2MultipartUpload it made) with every billed call
 * counted. A Proxy: the binding's methods are called on the binding itself.
 */
function meteredR2<T extends object>(target: T): T {
  return new Proxy(target, {
    get(t, prop) {
      const value: unknown = Reflect.get(t, prop, t);
      if (typeof value !== "function") return value;
      const fn = value as (...a: unknown[]) => unknown;
      const name = String(prop);
      const cls = R2_CLASS[name];
      if (cls === undefined && name !== "resumeMultipartUpload") return fn.bind(t);
      return (...args: unknown[]) => {
        const counted = !unmetered.getStore();
        if (counted && cls) meter.r2[cls]++;
        const result = fn.apply(t, args);
        // The multipart upload an R2Bucket hands out is metered too (resuming one makes no request).
        if (name === "createMultipartUpload") return (result as Promise<object>).then((upload) => meteredR2(upload));
        if (name === "resumeMultipartUpload") return meteredR2(result as object);
        if (counted && (name === "put" || name === "complete"))
          return (result as Promise<unknown>).then((r) => {
            meter.r2.bytesPut += putBytes(r);
            return r;
          });
        return result;
      };
    },
  });
}

function metered(env: Env): Env {
  meterD1(env.DB);
  // The product reads env.EXPORTS as optional (without it, exports read D1).
  const exports = (env as Partial<Env>).EXPORTS;
  return {
    ...env,
    JOBS: meteredQueue(env.JOBS, "idx-etl-jobs"),
    CHUNKS: meteredQueue(env.CHUNKS, "idx-etl-chunks"),
    ...(exports ? { EXPORTS: meteredR2(exports) } : {}),
  };
}

export default {
  async fetch(
    request: Request<unknown, IncomingRequestCfProperties>,
    env: Env,
    ctx: ExecutionContext,
  ): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/meter") return Response.json(meter);
    if (url.pathname === "/__bench/export-jobs") return Response.json({ done: exportJobsDone });
    if (url.pathname === "/__bench/meter/reset" && request.method === "POST") {
      meter = fresh();
      return Response.json(meter);
    }
    if (url.pathname === "/__bench/scheduled" && request.method === "POST") {
      const source = url.searchParams.get("source");
      if (!source) return new Response("source is required", { status: 400 });
      meter.invocations.scheduled++;
      const controller = { cron: "17 3 * * *", scheduledTime: Date.now(), noRetry() {} } as ScheduledController;
      await worker.scheduled(controller, { ...metered(env), DEFAULT_SOURCE: source }, ctx);
      return new Response("ok");
    }
    if (request.headers.get("x-bench-unmetered") === "1")
      return unmetered.run(true, () => worker.fetch(request, metered(env), ctx));
    meter.invocations.fetch++;
    return worker.fetch(request, metered(env), ctx);
  },

  async scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    meter.invocations.scheduled++;
    await worker.scheduled(controller, metered(env), ctx);
  },

  async queue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
    meter.invocations.queue[batch.queue] = (meter.invocations.queue[batch.queue] ?? 0) + 1;
    for (const m of batch.messages) add(meter.delivered, batch.queue, units(m.body));
    const exportJobs = batch.messages.filter((m) => (m.body as { kind?: unknown } | null)?.kind === "export").length;
    try {
      await worker.queue(batch, metered(env), ctx);
    } finally {
      exportJobsDone += exportJobs;
    }
  },
} satisfies ExportedHandler<Env>;
