/**
 * Bindings (generated into worker-configuration.d.ts by `wrangler types`) plus
 * the secret, and the run configuration parsed once from vars.
 */
import { FASHION_MNIST, pixelsPerImage } from "./datasets";
import { DEFAULT_RETRY, type RetryPolicy } from "./pipeline/download";
import { maxChunkImages } from "./pipeline/plan";

/** What `wrangler types` cannot see in wrangler.toml: the secret and the optional overrides. */
export interface ExtraBindings {
  /** Bearer token for POST /runs: `.dev.vars` locally, `wrangler secret put ETL_TOKEN` remotely. */
  ETL_TOKEN?: string;
  /** Optional overrides, as strings like every var. */
  ROWS_PER_STATEMENT?: string;
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
  /** Images per chunk message; their pixels ride in the message, so at most maxChunkImages. */
  readonly chunkSize: number;
  /** Rows per INSERT statement. */
  readonly rowsPerStatement: number;
  readonly retry: RetryPolicy;
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

export function readConfig(env: Env): Config {
  const most = maxChunkImages(pixelsPerImage(FASHION_MNIST));
  const chunkSize = positiveInt("CHUNK_SIZE", env.CHUNK_SIZE, most);
  if (chunkSize > most) {
    throw new Error(
      `CHUNK_SIZE must be at most ${most}: a chunk message carries its images' pixels and Queues caps a message at 128 KB, got "${env.CHUNK_SIZE}"`,
    );
  }
  return {
    defaultSource: env.DEFAULT_SOURCE,
    chunkSize,
    rowsPerStatement: positiveInt("ROWS_PER_STATEMENT", env.ROWS_PER_STATEMENT, 100),
    retry: {
      attempts: positiveInt("FETCH_ATTEMPTS", env.FETCH_ATTEMPTS, DEFAULT_RETRY.attempts),
      timeoutMs: positiveInt("FETCH_TIMEOUT_MS", env.FETCH_TIMEOUT_MS, DEFAULT_RETRY.timeoutMs),
      backoffMs: positiveInt("FETCH_BACKOFF_MS", env.FETCH_BACKOFF_MS, DEFAULT_RETRY.backoffMs),
    },
  };
}
