/**
 * A D1 binding that fails like production D1 does, which Miniflare's local D1
 * never does: a Proxy over the real binding that makes a seeded fraction of the
 * calls throw one of D1's documented transient errors (src/db/d1-errors.ts),
 * in three ways:
 *   before   — thrown without executing: nothing was committed;
 *   after    — executed (a batch committed), then thrown: D1 can report a failure
 *              after the commit, e.g. when the connection drops on the way back;
 *   overload — "D1 DB is overloaded…", refused without executing.
 * Deterministic for a seed as long as the calls reach it in the same order.
 */

export type FaultKind = "before" | "after" | "overload";
export const FAULT_KINDS: readonly FaultKind[] = ["before", "after", "overload"];

/** The calls that can fail: `batch`, and these methods of prepared statements. */
export type FlakyOp = "batch" | "run" | "all" | "first" | "raw";

export interface FlakyOptions {
  /** Probability in [0, 1] that an eligible call fails. */
  readonly rate: number;
  readonly seed: number;
  /** The ways to fail, taking turns; all three by default. */
  readonly kinds?: readonly FaultKind[];
  /** Which calls are eligible, by their SQL (a batch's statements in order); all by default. */
  readonly match?: (sql: readonly string[], op: FlakyOp) => boolean;
  /** Eligible calls wait this long before they run, as a slow D1 would: concurrent callers catch up meanwhile. */
  readonly delayMs?: number;
}

export interface FlakyD1 {
  readonly db: D1Database;
  /** Faults injected so far, by kind. */
  readonly faults: Record<FaultKind, number>;
  /** Eligible calls so far (failed or not). */
  readonly calls: () => number;
  /** How the eligible calls that reached D1 and drew no fault ended: D1's own verdicts. */
  readonly settled: { ok: number; readonly errors: string[] };
  /** Stop (or resume) injecting faults; the binding keeps working. */
  enabled: boolean;
}

import { mulberry32 } from "./idx-fixtures";

export { mulberry32 };

/** Messages as D1 words them (developers.cloudflare.com/d1/observability/debug-d1/#error-list). */
const MESSAGES: Record<FaultKind, readonly string[]> = {
  before: [
    "D1_ERROR: Network connection lost.",
    "D1_ERROR: Cannot resolve D1 DB due to transient issue on remote node.",
    "D1_ERROR: D1 DB reset because its code was updated.",
  ],
  after: ["D1_ERROR: Network connection lost.", "D1_ERROR: Internal error in D1 DB storage caused object to be reset."],
  overload: [
    "D1_ERROR: D1 DB is overloaded. Requests queued for too long.",
    "D1_ERROR: D1 DB is overloaded. Too many requests queued.",
  ],
};

export function flakyD1(real: D1Database, opts: FlakyOptions): FlakyD1 {
  const random = mulberry32(opts.seed);
  const kinds = opts.kinds ?? FAULT_KINDS;
  const faults: Record<FaultKind, number> = { before: 0, after: 0, overload: 0 };
  let calls = 0;
  let faultCount = 0;
  const settled = { ok: 0, errors: [] as string[] };
  const sqlOf = new WeakMap<object, string>();
  const unwrap = new WeakMap<object, D1PreparedStatement>();
  const state = { enabled: true };

  /** Run `exec` as D1 would, failing it first or afterwards if this call draws a fault. */
  const call = async <T>(op: FlakyOp, sql: readonly string[], exec: () => Promise<T>): Promise<T> => {
    if (!state.enabled || !(opts.match?.(sql, op) ?? true)) return exec();
    calls++;
    if (opts.delayMs) await new Promise((resolve) => setTimeout(resolve, opts.delayMs));
    if (random() >= opts.rate)
      return exec().then(
        (result) => {
          settled.ok++;
          return result;
        },
        (err: unknown) => {
          settled.errors.push(String(err));
          throw err;
        },
      );
    // The kinds take turns, so that a handful of faults already covers all of them.
    const kind = kinds[faultCount++ % kinds.length]!;
    const choices = MESSAGES[kind];
    const error = new Error(choices[Math.floor(random() * choices.length)]!);
    faults[kind]++;
    if (kind === "after") await exec(); // it committed; the caller hears otherwise
    throw error;
  };

  const wrapStatement = (stmt: D1PreparedStatement, sql: string): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrapStatement(target.bind(...values), sql);
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== "function") return value;
        const method = value as (...args: unknown[]) => unknown;
        if (prop === "run" || prop === "all" || prop === "first" || prop === "raw")
          return (...args: unknown[]) => call(prop, [sql], () => Promise.resolve(method.apply(target, args)));
        return method.bind(target);
      },
    });
    sqlOf.set(proxy, sql);
    unwrap.set(proxy, stmt);
    return proxy;
  };

  const db = new Proxy(real, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => wrapStatement(target.prepare(query), query);
      if (prop === "batch")
        return <T = unknown>(statements: D1PreparedStatement[]) =>
          call(
            "batch",
            statements.map((s) => sqlOf.get(s) ?? ""),
            () => target.batch<T>(statements.map((s) => unwrap.get(s) ?? s)),
          );
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });

  return {
    db,
    faults,
    calls: () => calls,
    settled,
    get enabled() {
      return state.enabled;
    },
    set enabled(on: boolean) {
      state.enabled = on;
    },
  };
}

/** Total faults injected. */
export const faultCount = (f: FlakyD1): number => FAULT_KINDS.reduce((n, k) => n + f.faults[k], 0);
