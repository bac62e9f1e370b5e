/**
 * The app with a D1 binding that records every statement prepared through it
 * (and its parameters), to see which rows a request reads.
 */
import { env } from "cloudflare:test";
import { appFetch } from "./app-fetch";

interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * The app with a D1 binding that records every statement prepared through it
 * (and its parameters): the real D1 underneath. The body is read before the
 * invocation is awaited (the export streams from waitUntil). Without the R2
 * bucket unless `withR2`, so that an export reads D1 whether or not its files
 * were materialised to R2 meanwhile.
 */
export async function recorded(path: string, headers: Record<string, string> = {}, method = "GET", withR2 = false) {
  const statements: Statement[] = [];
  const db = new Proxy(env.DB, {
    get(target, prop) {
      if (prop === "prepare")
        return (sql: string) => {
          const entry: Statement = { sql, params: [] };
          statements.push(entry);
          const stmt = target.prepare(sql);
          return new Proxy(stmt, {
            get(s, p) {
              if (p === "bind")
                return (...params: unknown[]) => {
                  entry.params = params;
                  return s.bind(...params);
                };
              const v = Reflect.get(s, p) as unknown;
              return typeof v === "function" ? v.bind(s) : v;
            },
          });
        };
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const { EXPORTS, ...rest } = env;
  const bindings = { ...rest, DB: db, ...(withR2 ? { EXPORTS } : {}) } as Env;
  const { res, body } = await appFetch(path, bindings, { method, headers });
  /**
   * Statements that read an image table (FROM or JOIN images__<dataset>__<split>), not the catalog or the swap log
   * (the catalog read names the tables in strings, to find them in sqlite_master).
   */
  const imageReads = statements.filter((s) => /\b(FROM|JOIN)\s+images__/i.test(s.sql));
  return { res, body, statements, imageReads };
}
