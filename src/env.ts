/**
 * The bindings `wrangler types` cannot see in wrangler.toml (the secret and the
 * optional overrides), added to the generated Env; pipeline/config.ts reads them.
 */

/** What `wrangler types` cannot see in wrangler.toml: the secret and the optional overrides. */
export interface ExtraBindings {
  /** Bearer token for POST /runs: `.dev.vars` locally, `wrangler secret put ETL_TOKEN` remotely. */
  ETL_TOKEN?: string;
  /** Where the default dataset's official files are, instead of its registry mirrors. */
  DEFAULT_SOURCE?: string;
  /** Optional overrides, as strings like every var. */
  JOB_MAX_CHUNKS?: string;
  D1_MAX_BYTES?: string;
  ROWS_PER_STATEMENT?: string;
  /** Seconds without a sign of life after which a new trigger may presume an active run dead. */
  RUN_LEASE_SECONDS?: string;
  FETCH_ATTEMPTS?: string;
  FETCH_TIMEOUT_MS?: string;
  FETCH_BACKOFF_MS?: string;
  FETCH_MIN_BYTES_PER_S?: string;
  FETCH_RATE_WINDOW_MS?: string;
}

declare global {
  // Both the global Env (handlers) and Cloudflare.Env (`cloudflare:workers`, tests).
  interface Env extends ExtraBindings {}
  namespace Cloudflare {
    interface Env extends ExtraBindings {}
  }
}

export {};
