import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      ETL_TOKEN?: string;
      ROWS_PER_STATEMENT?: string;
      SEGMENT_CHUNKS?: string;
      FETCH_ATTEMPTS?: string;
      FETCH_TIMEOUT_MS?: string;
      FETCH_BACKOFF_MS?: string;
    }
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the archive server that test/global-setup.ts starts. */
    archiveServer: string;
  }
}
