/**
 * D1 calls that fail with an error Cloudflare documents as transient are retried
 * in-process with backoff, so a burst of them does not spend the queue's retries.
 *
 * Why in-process: a `msg.retry()` counts toward the consumer's max_retries, and
 * production D1 sheds load ("D1 DB is overloaded…"), loses connections and
 * resets its storage object far more often than Miniflare's local D1 ever does.
 * A message that met such a blip on every delivery would reach the dead-letter
 * queue and fail its run although nothing was wrong with it.
 *
 * Why retrying is safe here, even though D1 can report an error after a batch
 * committed: every write the queue consumers make is idempotent or guarded.
 * Chunk loads upsert the same bytes, the ledger insert is ON CONFLICT DO NOTHING
 * and progress is recomputed from the ledger; run transitions are conditional
 * UPDATEs; the swap's first statement is a row in dataset_swaps whose primary key
 * refuses a second swap of the run (a constraint error, which is not transient,
 * so it is rethrown at once and completeIfDone reads back that the run is
 * complete). One consequence callers must tolerate: a conditional UPDATE …
 * RETURNING retried after its first attempt committed returns no row. Do not wrap
 * code whose writes are not idempotent (createRun's insert of a fresh id is not:
 * that is why only the queue handler uses this).
 *
 * Only `transient` errors (d1-errors.ts) are retried here. A `too-large` one
 * would most likely reset the database again if repeated at once; it reaches
 * the consumer, which retries the message later (core/errors.ts counts D1's
 * errors as retryable). Constraint and SQL errors are rethrown at once.
 */
import { backoffMs, type Backoff } from "../core/backoff";
import { errorMessage } from "../core/errors";
import { classifyD1Error } from "./d1-errors";

export interface D1RetryOptions {
  /** Tries per call, the first included. */
  readonly attempts?: number;
  /** The wait before each retry (core/backoff.ts). */
  readonly backoff?: Backoff;
  readonly sleep?: (ms: number) => Promise<void>;
  /** In [0, 1), as Math.random. */
  readonly random?: () => number;
  /** Told of each retry before its backoff; logs a warning by default. */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Defaults. Five tries with full-jitter backoff from 100 ms sleep at most
 * 100 + 200 + 400 + 800 = 1.5 s (0.75 s on average) in all: long enough for
 * D1's request queue to drain or its object to restart, short enough that a
 * consumer invocation is not held up. Even if every try ran into D1's 30 s
 * maximum query duration (developers.cloudflare.com/d1/platform/limits), five
 * stay far inside a queue consumer's 15 minutes of wall-clock time, and sleeping
 * spends no CPU time. The 2 s cap only matters if `attempts` is raised. Full
 * jitter spreads the retries of many concurrent consumers instead of sending
 * them back to an overloaded D1 in step.
 */
export const D1_RETRY_DEFAULTS = { attempts: 5, backoff: { baseMs: 100, capMs: 2_000 } } as const;

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Run `op`, retrying transient D1 errors; the last error if every try failed. */
export async function withD1Retry<T>(op: () => Promise<T>, opts: D1RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, opts.attempts ?? D1_RETRY_DEFAULTS.attempts);
  const backoff = opts.backoff ?? D1_RETRY_DEFAULTS.backoff;
  const sleep = opts.sleep ?? sleepMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (attempt >= attempts || classifyD1Error(err) !== "transient") throw err;
      const delayMs = backoffMs(attempt, backoff, opts.random);
      if (opts.onRetry) opts.onRetry(err, attempt, delayMs);
      else console.warn(`D1: ${errorMessage(err)}; try ${attempt + 1} of ${attempts} in ${delayMs} ms`);
      await sleep(delayMs);
    }
  }
}

const RETRIED_STATEMENT_METHODS = new Set<PropertyKey>(["run", "all", "first", "raw"]);

/**
 * `db` with `batch`, and `run`/`all`/`first`/`raw` of the statements prepared
 * through it, retried by withD1Retry. Everything else (exec, dump, withSession)
 * passes through untouched. Statements prepared through the proxy can be given
 * to its `batch` (they are unwrapped for the binding underneath).
 */
export function retryingD1(db: D1Database, opts: D1RetryOptions = {}): D1Database {
  const unwrap = new WeakMap<object, D1PreparedStatement>();

  const wrapStatement = (stmt: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrapStatement(target.bind(...values));
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== "function") return value;
        const method = value as (...args: unknown[]) => unknown;
        if (RETRIED_STATEMENT_METHODS.has(prop))
          return (...args: unknown[]) => withD1Retry(() => Promise.resolve(method.apply(target, args)), opts);
        return method.bind(target);
      },
    });
    unwrap.set(proxy, stmt);
    return proxy;
  };

  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => wrapStatement(target.prepare(query));
      if (prop === "batch")
        return <T = unknown>(statements: D1PreparedStatement[]) => {
          const inner = statements.map((s) => unwrap.get(s) ?? s);
          return withD1Retry(() => target.batch<T>(inner), opts);
        };
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
