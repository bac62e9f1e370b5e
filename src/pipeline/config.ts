/** The run configuration, parsed once from the Worker's vars, and the queue names. */
import { FASHION_MNIST, pixelsPerImage } from "../core/datasets";
import { DEFAULT_LEASE_MS } from "../db/runs";
import { DEFAULT_RETRY, type RetryPolicy } from "./download";
import { maxChunkImages } from "./plan";

/** Queue names, as in wrangler.toml (test/config.test.ts keeps them in step). */
export const QUEUES = { jobs: "idx-etl-jobs", chunks: "idx-etl-chunks", deadLetter: "idx-etl-dlq" } as const;

export interface Config {
  readonly defaultSource: string;
  /** Images per chunk message; their pixels ride in the message, so at most maxChunkImages. */
  readonly chunkSize: number;
  /** Rows per INSERT statement. */
  readonly rowsPerStatement: number;
  readonly retry: RetryPolicy;
  /** An active run silent this long is presumed dead (runs.ts DEFAULT_LEASE_MS). */
  readonly leaseMs: number;
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
    leaseMs: positiveInt("RUN_LEASE_SECONDS", env.RUN_LEASE_SECONDS, DEFAULT_LEASE_MS / 1000) * 1000,
    retry: {
      attempts: positiveInt("FETCH_ATTEMPTS", env.FETCH_ATTEMPTS, DEFAULT_RETRY.attempts),
      timeoutMs: positiveInt("FETCH_TIMEOUT_MS", env.FETCH_TIMEOUT_MS, DEFAULT_RETRY.timeoutMs),
      backoffMs: positiveInt("FETCH_BACKOFF_MS", env.FETCH_BACKOFF_MS, DEFAULT_RETRY.backoffMs),
      minBytesPerSecond: positiveInt(
        "FETCH_MIN_BYTES_PER_S",
        env.FETCH_MIN_BYTES_PER_S,
        DEFAULT_RETRY.minBytesPerSecond,
      ),
      rateWindowMs: positiveInt("FETCH_RATE_WINDOW_MS", env.FETCH_RATE_WINDOW_MS, DEFAULT_RETRY.rateWindowMs),
    },
  };
}
