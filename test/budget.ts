/**
 * A model of what one chunk-consumer invocation costs against the
 * per-invocation limits (free plan: 50 D1 queries, 50 subrequests), for the
 * bench to print for configurations it does not run. budget.test.ts holds it
 * to the calls the real consumer makes, counted.
 *
 * Counted conservatively: every statement inside a D1 batch counts as a query,
 * every binding call (D1, Queues) as a subrequest, and the completion check
 * takes its longest path (counts disagree → fail the run).
 */
import { transactionStatements } from "../src/db/batch";
import { MAX_ROWS_PER_STATEMENT, runStateTransaction, swapStatements } from "../src/db/load";

const SWAP_STATEMENTS = swapStatements(
  { id: "run", dataset: "fashion-mnist" },
  {
    expected: { train: 0, test: 0 },
    others: [],
    view: { dataset: "fashion-mnist", others: [] },
    classNames: [],
    provenance: { official: false, source: "" },
  },
  "",
).length;

export const INVOCATION_LIMITS = { d1Queries: 50, subrequests: 50 } as const;

export interface ConsumerShape {
  /** wrangler.toml [[queues.consumers]] max_batch_size for idx-etl-chunks. */
  readonly batchSize: number;
  readonly chunkSize: number;
  readonly rowsPerStatement: number;
  readonly pixelsPerImage: number;
}

/**
 * runs.ts completeIfDone, longest path: getRun, COUNT run_chunks, the catalog, the view's tables, the swap
 * batch, getRun, count rows, failRun.
 */
const COMPLETION_QUERIES = 1 + 1 + 1 + 1 + SWAP_STATEMENTS + 1 + 1 + 1;
const COMPLETION_CALLS = 8;
/** load.ts loadTransaction: after the chunks, the progress update and the reads of the run's state and ledger. */
const RUN_STATEMENTS = transactionStatements(runStateTransaction("run", [], "")).length;

export interface InvocationCost {
  readonly insertsPerChunk: number;
  /** Inserts plus the chunk's ledger row. */
  readonly statementsPerChunk: number;
  readonly d1Queries: number;
  readonly subrequests: number;
}

/** Chunks load into the shadow table, whose inserts also bind the run id. */
export function insertsPerChunk(chunkSize: number, rowsPerStatement: number): number {
  return Math.ceil(chunkSize / Math.min(rowsPerStatement, MAX_ROWS_PER_STATEMENT));
}

/**
 * consume.ts loads a delivery's chunks (all of one run, as the producer sends
 * them) in one D1 batch, then, if that completed the ledger, runs the
 * completion check; on a load error it records the failure instead (one call).
 */
export function chunkInvocationCost(shape: ConsumerShape): InvocationCost {
  const inserts = insertsPerChunk(shape.chunkSize, shape.rowsPerStatement);
  const statementsPerChunk = inserts + 1;
  return {
    insertsPerChunk: inserts,
    statementsPerChunk,
    d1Queries: shape.batchSize * statementsPerChunk + RUN_STATEMENTS + COMPLETION_QUERIES,
    subrequests: 1 + COMPLETION_CALLS,
  };
}
