/**
 * What one chunk-consumer invocation costs against the per-invocation limits
 * (free plan: 50 D1 queries, 50 subrequests), derived from the code paths in
 * consume.ts / load.ts / runs.ts. Pure, so a test can hold the configured
 * values (wrangler.toml, env defaults) to it and the bench can print it.
 *
 * Counted conservatively: every statement inside a D1 batch counts as a query,
 * every binding call (D1, R2, Queues) as a subrequest, and the completion check
 * takes its longest path (counts disagree → fail the run).
 */
import { maxRowsPerStatement, swapStatements } from "./load";

const SWAP_STATEMENTS = swapStatements("run", { train: 0, test: 0 }, "").length;

export const INVOCATION_LIMITS = { d1Queries: 50, subrequests: 50 } as const;

export interface ConsumerShape {
  /** wrangler.toml [[queues.consumers]] max_batch_size for idx-etl-chunks. */
  readonly batchSize: number;
  readonly chunkSize: number;
  readonly rowsPerStatement: number;
  readonly pixelsPerImage: number;
}

/** consume.ts: getRun once per run in the batch (one run at a time). */
const RUN_STATUS_READS = 1;
/** runs.ts completeIfDone, longest path: getRun, COUNT run_chunks, the swap batch, getRun, count rows, failRun. */
const COMPLETION_QUERIES = 1 + 1 + SWAP_STATEMENTS + 1 + 1 + 1;
const COMPLETION_CALLS = 6;
/** The staging delete once the run is finished (R2). */
const STAGING_CLEANUP_CALLS = 1;

export interface InvocationCost {
  readonly insertsPerChunk: number;
  /** Inserts plus the ledger row and the progress update: one D1 batch. */
  readonly statementsPerChunk: number;
  readonly d1Queries: number;
  readonly subrequests: number;
}

/** Chunks load into the shadow table, whose inserts also bind the run id. */
export function insertsPerChunk(chunkSize: number, rowsPerStatement: number): number {
  return Math.ceil(chunkSize / Math.min(rowsPerStatement, maxRowsPerStatement({ into: "images_next", runId: "" })));
}

export function chunkInvocationCost(shape: ConsumerShape): InvocationCost {
  const inserts = insertsPerChunk(shape.chunkSize, shape.rowsPerStatement);
  const statementsPerChunk = inserts + 2;
  return {
    insertsPerChunk: inserts,
    statementsPerChunk,
    d1Queries: RUN_STATUS_READS + shape.batchSize * statementsPerChunk + COMPLETION_QUERIES,
    // Per message: one R2 range read and one D1 batch call.
    subrequests: RUN_STATUS_READS + shape.batchSize * 2 + COMPLETION_CALLS + STAGING_CLEANUP_CALLS,
  };
}
