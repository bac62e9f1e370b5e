/**
 * A D1 binding that holds its callers to production D1's limit on a value,
 * which Miniflare's local D1 does not enforce: "Maximum string, BLOB or table
 * row size: 2,000,000 bytes" (developers.cloudflare.com/d1/platform/limits).
 * A Proxy over the real binding refuses, as D1 would, any statement that
 * binds a longer string or BLOB, and any answer that carries one: what a
 * large image's insert and reads must stay within. (SQL's own intermediate
 * values it cannot see: the code keeps those within the limit by
 * construction, and the tests of its statements check it.)
 */
export const D1_VALUE_LIMIT = 2_000_000;

const tooBig = (v: unknown): boolean =>
  (typeof v === "string" && v.length > D1_VALUE_LIMIT) ||
  ((v instanceof ArrayBuffer || ArrayBuffer.isView(v)) && v.byteLength > D1_VALUE_LIMIT);

function refuse(where: string): never {
  throw new Error(`D1_ERROR: string or blob too big: SQLITE_TOOBIG (${where})`);
}

/** Every value of a D1 answer: rows of objects (all, first) or of arrays (raw), of one result or of a batch's. */
function checkAnswer(answer: unknown): void {
  const values = (row: unknown): unknown[] =>
    Array.isArray(row) ? row : row && typeof row === "object" ? Object.values(row) : [row];
  const results = (a: unknown): unknown[] =>
    Array.isArray(a) ? a : a && typeof a === "object" && "results" in a ? (a.results as unknown[]) : [a];
  for (const part of Array.isArray(answer) && answer.every((r) => r && typeof r === "object" && "results" in r)
    ? answer
    : [answer])
    for (const row of results(part)) if (values(row).some(tooBig)) refuse("a value in the answer");
}

export interface StrictD1 {
  readonly db: D1Database;
  /** Bound values checked so far, and the longest one seen. */
  readonly checked: () => { values: number; longest: number };
}

export function strictD1(real: D1Database): StrictD1 {
  const unwrap = new WeakMap<object, D1PreparedStatement>();
  let values = 0;
  let longest = 0;
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(target, prop) {
        if (prop === "bind")
          return (...params: unknown[]) => {
            for (const p of params) {
              values++;
              const n = typeof p === "string" ? p.length : ArrayBuffer.isView(p) ? p.byteLength : 0;
              longest = Math.max(longest, n);
              if (tooBig(p)) refuse(`a bound value of ${n} bytes`);
            }
            return wrap(target.bind(...params));
          };
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== "function") return value;
        const method = value as (...args: unknown[]) => Promise<unknown>;
        if (prop === "run" || prop === "all" || prop === "first" || prop === "raw")
          return async (...args: unknown[]) => {
            const answer = await method.apply(target, args);
            checkAnswer(answer);
            return answer;
          };
        return method.bind(target);
      },
    });
    unwrap.set(proxy, stmt);
    return proxy;
  };
  const db = new Proxy(real, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => wrap(target.prepare(query));
      if (prop === "batch")
        return async (statements: D1PreparedStatement[]) => {
          const answer = await target.batch(statements.map((s) => unwrap.get(s) ?? s));
          checkAnswer(answer);
          return answer;
        };
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { db, checked: () => ({ values, longest }) };
}
