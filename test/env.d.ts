import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      /** A second database, for test/migration.test.ts. */
      LEGACY_DB: D1Database;
    }
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the archive server that test/global-setup.ts starts. */
    archiveServer: string;
  }
}
