/**
 * What a D1 error means for the caller, read from the texts Cloudflare
 * documents ("Debug D1 → Error list",
 * developers.cloudflare.com/d1/observability/debug-d1/#error-list) and the
 * SQLite result codes D1 appends to a failed statement's message. The one place
 * that reads D1's error messages: callers branch on the kind, never on text.
 */

/**
 * - `transient`: D1 itself, not the query, failed or shed load; the same call
 *   can succeed a moment later (d1-retry.ts retries it in-process).
 * - `too-large`: D1 reset or refused because of what the query asked of it
 *   (time, memory, CPU, a value or statement over SQLite's limits); repeating
 *   it at once would most likely fail the same way.
 * - `constraint`: a CHECK, key or NOT NULL refused the rows (SQLITE_CONSTRAINT).
 * - `missing-table`: the statement names a table that does not exist (an SQL
 *   error singled out: shadow tables come and go with runs).
 * - `sql`: any other error in the statement itself: syntax, a missing column,
 *   a value of a type D1 cannot bind. The same on every try.
 * - `unknown`: not an error D1 documents (or not D1's at all).
 */
export type D1ErrorKind = "transient" | "too-large" | "constraint" | "missing-table" | "sql" | "unknown";

/**
 * Fragments of the documented D1_ERROR messages whose remedy is to retry, and
 * the example in "Retry queries" (developers.cloudflare.com/d1/best-practices/retry-queries/),
 * matched as fragments like Cloudflare's own `shouldRetry`.
 */
const TRANSIENT: readonly string[] = [
  // Recommended action "Retry the operation":
  "D1 DB reset because its code was updated", // D1 (or its Durable Object) was redeployed
  // "Internal error while starting up D1 DB storage caused object to be reset." and
  // "Internal error in D1 DB storage caused object to be reset."
  "storage caused object to be reset",
  "Network connection lost",
  "Cannot resolve D1 DB due to transient issue on remote node",
  // "App action: Retry the operation, and ensure the connection stays open."
  "Can't read from request stream because client disconnected",
  // "D1 DB is overloaded. Requests queued for too long." and "… Too many requests
  // queued.": the documented remedy is to "send fewer requests by spreading the
  // load over time", which is what backing off with jitter does. The queue that
  // overflowed is other requests', not something wrong with this one.
  "D1 DB is overloaded",
];

/**
 * Documented next to the transient ones, but the docs blame the query (too
 * large, too slow) and recommend changing it; and SQLite's own limits on a
 * value's or a statement's size (SQLITE_TOOBIG).
 */
const TOO_LARGE: readonly string[] = [
  "D1 DB storage operation exceeded timeout which caused object to be reset",
  "D1 DB's isolate exceeded its memory limit and was reset",
  "D1 DB exceeded its CPU time limit and was reset",
  "SQLITE_TOOBIG",
  "string or blob too big",
];

const CONSTRAINT = /constraint failed|SQLITE_CONSTRAINT/i;
const MISSING_TABLE = /no such table/i;
/** SQLITE_ERROR is SQLite's code for an error in the statement; the D1_ prefixes are the binding's (debug-d1). */
const SQL = /SQLITE_ERROR|D1_EXEC_ERROR|D1_TYPE_ERROR|D1_COLUMN_NOTFOUND/;

/** The messages of `err` and its causes: before wrangler 3.1.1 D1's detail was in `cause` (debug-d1). */
function messages(err: unknown): string[] {
  const out: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 3; depth++) {
    out.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return out;
}

/** What kind of D1 error `err` is; `unknown` for anything D1 does not document. */
export function classifyD1Error(err: unknown): D1ErrorKind {
  const texts = messages(err);
  const any = (test: (m: string) => boolean) => texts.some(test);
  if (any((m) => TRANSIENT.some((f) => m.includes(f)))) return "transient";
  if (any((m) => TOO_LARGE.some((f) => m.includes(f)))) return "too-large";
  if (any((m) => CONSTRAINT.test(m))) return "constraint";
  if (any((m) => MISSING_TABLE.test(m))) return "missing-table";
  if (any((m) => SQL.test(m))) return "sql";
  return "unknown";
}

/** An error in the statement itself, which no retry can mend: the table it names is missing, or any other SQL error. */
export const isSqlError = (kind: D1ErrorKind): boolean => kind === "sql" || kind === "missing-table";
