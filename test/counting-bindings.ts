/**
 * Bindings that count what the code under test asks of them, for the
 * per-invocation limits: every call that leaves the Worker (a D1 batch, a
 * prepared statement's run/all/first/raw, an exec, a queue send) is a
 * subrequest, and every statement D1 executes is a query — each statement of a
 * batch counted, the conservative reading of "queries per invocation".
 * Proxies over the real bindings: what they do is unchanged.
 */

export interface Counts {
  /** Calls that left the Worker: D1 executions and queue or bucket operations. */
  subrequests: number;
  /** Statements D1 executed. */
  d1Queries: number;
  /** D1 batches, and the statements of each in order. */
  readonly batches: number[];
  /** Calls by binding and method, e.g. "DB.batch", "JOBS.send". */
  readonly byMethod: Record<string, number>;
}

export const newCounts = (): Counts => ({ subrequests: 0, d1Queries: 0, batches: [], byMethod: {} });

const note = (counts: Counts, what: string) => {
  counts.subrequests++;
  counts.byMethod[what] = (counts.byMethod[what] ?? 0) + 1;
};

const EXECUTIONS = new Set<PropertyKey>(["run", "all", "first", "raw"]);

/** `real` counting into `counts`; statements prepared through it can be batched through it. */
export function countingD1(real: D1Database, counts: Counts): D1Database {
  const unwrap = new WeakMap<object, D1PreparedStatement>();
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrap(target.bind(...values));
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== "function") return value;
        const method = value as (...args: unknown[]) => unknown;
        if (!EXECUTIONS.has(prop)) return method.bind(target);
        return (...args: unknown[]) => {
          note(counts, `DB.${String(prop)}`);
          counts.d1Queries++;
          return method.apply(target, args);
        };
      },
    });
    unwrap.set(proxy, stmt);
    return proxy;
  };
  return new Proxy(real, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => wrap(target.prepare(query));
      if (prop === "batch")
        return <T = unknown>(statements: D1PreparedStatement[]) => {
          note(counts, "DB.batch");
          counts.d1Queries += statements.length;
          counts.batches.push(statements.length);
          return target.batch<T>(statements.map((s) => unwrap.get(s) ?? s));
        };
      if (prop === "exec")
        return async (query: string) => {
          note(counts, "DB.exec");
          const result = await target.exec(query);
          counts.d1Queries += result.count;
          return result;
        };
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function") return value;
      // Anything else that reaches D1 (dump, withSession) is not expected of a consumer: count it as one call.
      return (...args: unknown[]) => {
        note(counts, `DB.${String(prop)}`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** A queue or bucket binding whose every method call counts as a subrequest, under `name`. */
export function countingBinding<T extends object>(real: T, name: string, counts: Counts): T {
  return new Proxy(real, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        note(counts, `${name}.${String(prop)}`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
