/**
 * Bindings (generated into worker-configuration.d.ts by `wrangler types`) plus
 * the secret, and the run configuration parsed once from vars.
 */
import { DEFAULT_RETRY, type RetryPolicy } from "./pipeline/download";

/** What `wrangler types` cannot see in wrangler.toml: the secret and the optional overrides. */
export interface ExtraBindings {
  /** Bearer token for POST /runs: `.dev.vars` locally, `wrangler secret put ETL_TOKEN` remotely. */
  ETL_TOKEN?: string;
  /** Optional overrides, as strings like every var. */
  ROWS_PER_STATEMENT?: string;
  SEGMENT_CHUNKS?: string;
  FETCH_ATTEMPTS?: string;
  FETCH_TIMEOUT_MS?: string;
  FETCH_BACKOFF_MS?: string;
}

declare global {
  // Both the global Env (handlers) and Cloudflare.Env (`cloudflare:workers`, tests).
  interface Env extends ExtraBindings {}
  namespace Cloudflare {
    interface Env extends ExtraBindings {}
  }
}

/** Queue names, as in wrangler.toml (test/config.test.ts keeps them in step). */
export const QUEUES = { jobs: "idx-etl-jobs", chunks: "idx-etl-chunks", deadLetter: "idx-etl-dlq" } as const;

export interface Config {
  readonly defaultSource: string;
  /** Images per chunk message (one D1 transaction). */
  readonly chunkSize: number;
  /** Rows per INSERT statement. */
  readonly rowsPerStatement: number;
  /**
   * Images per staging object (a multiple of chunkSize): loading starts as
   * soon as the first one is stored. 10 chunks (5,000 images, 3.9 MB) keep the
   * producer at ~14 R2 puts and ~14 sendBatch calls for Fashion-MNIST.
   */
  readonly segmentImages: number;
  readonly retry: RetryPolicy;
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

export function readConfig(env: Env): Config {
  const chunkSize = positiveInt("CHUNK_SIZE", env.CHUNK_SIZE, 500);
  return {
    defaultSource: env.DEFAULT_SOURCE,
    chunkSize,
    segmentImages: chunkSize * positiveInt("SEGMENT_CHUNKS", env.SEGMENT_CHUNKS, 10),
    rowsPerStatement: positiveInt("ROWS_PER_STATEMENT", env.ROWS_PER_STATEMENT, 100),
    retry: {
      attempts: positiveInt("FETCH_ATTEMPTS", env.FETCH_ATTEMPTS, DEFAULT_RETRY.attempts),
      timeoutMs: positiveInt("FETCH_TIMEOUT_MS", env.FETCH_TIMEOUT_MS, DEFAULT_RETRY.timeoutMs),
      backoffMs: positiveInt("FETCH_BACKOFF_MS", env.FETCH_BACKOFF_MS, DEFAULT_RETRY.backoffMs),
    },
  };
}
