/**
 * Statements run as one D1 batch, which D1 executes as a single transaction
 * (DDL and DML alike). A transaction's reads come back by name, so no caller
 * counts positions in a batch's results.
 */

export interface Statement {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}

/** Run statements as one D1 batch: D1 executes a batch as a single transaction. */
export async function runBatch(db: D1Database, statements: readonly Statement[]): Promise<D1Result[]> {
  return db.batch(statements.map((s) => db.prepare(s.sql).bind(...s.params)));
}

/** One batch's writes, then its reads, each read named for the result it gives back. */
export interface Transaction<N extends string> {
  readonly writes: readonly Statement[];
  /** Run in the order of Object.keys (insertion order for names that are not numbers). */
  readonly reads: Readonly<Record<N, Statement>>;
}

/** A transaction's statements in the order D1 runs them. */
export const transactionStatements = <N extends string>(tx: Transaction<N>): Statement[] => [
  ...tx.writes,
  ...Object.values<Statement>(tx.reads),
];

/** Run a transaction as one D1 batch; the results of its reads, by name. */
export async function runTransaction<N extends string>(
  db: D1Database,
  tx: Transaction<N>,
): Promise<Record<N, D1Result>> {
  const results = await runBatch(db, transactionStatements(tx));
  const names = Object.keys(tx.reads) as N[];
  return Object.fromEntries(names.map((name, i) => [name, results[tx.writes.length + i]!])) as Record<N, D1Result>;
}
