/** The run configuration, parsed once from the Worker's vars, and the queue names. */
import { isDatasetName } from "../core/datasets";
import { DEFAULT_DATASET, registryEntry } from "../core/registry";
import { DEFAULT_LEASE_MS } from "../db/run-start";
import { DEFAULT_RETRY, type RetryPolicy } from "./fetch";
import { maxChunkImages } from "./plan";

/** Queue names, as in wrangler.toml (test/config.test.ts keeps them in step). */
export const QUEUES = { jobs: "idx-etl-jobs", chunks: "idx-etl-chunks", deadLetter: "idx-etl-dlq" } as const;

export interface Config {
  /**
   * DEFAULT_SOURCE: where the default dataset's official files are, instead of
   * its registry mirrors (tests and local mirrors: held to the published MD5s).
   */
  readonly defaultSource: string | undefined;
  /** DATASETS: what the cron trigger loads, in order. */
  readonly cronDatasets: readonly string[];
  /**
   * Images per chunk message, at most: their pixels ride in the message, so a
   * run of larger images sends fewer per message (maxChunkImages).
   */
  readonly chunkSize: number;
  /**
   * JOB_MAX_CHUNKS: the most chunk messages one extraction job sends; a larger
   * dataset's job hands the rest on to a job message of its own (job.ts), so
   * that no invocation exceeds the Workers limit on subrequests. CPU is another
   * matter: each job inflates the archive it sends from from its start (a gzip
   * stream cannot be entered midway), so wrangler.toml raises the CPU limit.
   */
  readonly jobMaxChunks: number;
  /** D1_MAX_BYTES: the database size a run must stay within, its shadow copy included. */
  readonly maxDatabaseBytes: number;
  /** Rows per INSERT statement. */
  readonly rowsPerStatement: number;
  readonly retry: RetryPolicy;
  /** An active run silent this long is presumed dead (db/run-start.ts DEFAULT_LEASE_MS). */
  readonly leaseMs: number;
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

/** D1's largest database (developers.cloudflare.com/d1/platform/limits), in bytes, counted as 10⁹ to be safe. */
export const D1_MAX_DATABASE_BYTES = 10_000_000_000;

/**
 * Chunk messages one job may send: a sendBatch (one subrequest) carries two
 * chunk messages (Queues' 256 KB per batch), and we budget 1,000 subrequests
 * to Cloudflare services per invocation, the least any plan has allowed; the
 * rest of the budget is for D1 (ledger, pins, heartbeats) and retries.
 */
export const DEFAULT_JOB_MAX_CHUNKS = 800;

function datasetList(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === "") return [DEFAULT_DATASET];
  const names = raw.split(",").map((s) => s.trim());
  for (const n of names) {
    if (!isDatasetName(n) || !registryEntry(n)) {
      throw new Error(`DATASETS must list registry datasets separated by commas, got "${n}"`);
    }
  }
  return [...new Set(names)];
}

export function readConfig(env: Env): Config {
  const most = maxChunkImages(28 * 28);
  const chunkSize = positiveInt("CHUNK_SIZE", env.CHUNK_SIZE, most);
  return {
    defaultSource: env.DEFAULT_SOURCE === "" ? undefined : env.DEFAULT_SOURCE,
    cronDatasets: datasetList(env.DATASETS),
    chunkSize,
    jobMaxChunks: positiveInt("JOB_MAX_CHUNKS", env.JOB_MAX_CHUNKS, DEFAULT_JOB_MAX_CHUNKS),
    maxDatabaseBytes: positiveInt("D1_MAX_BYTES", env.D1_MAX_BYTES, D1_MAX_DATABASE_BYTES),
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
