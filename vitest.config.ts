import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Tests run inside workerd against real local D1 and Queues. The archive
// server started by test/global-setup.ts plays the download source, over
// 127.0.0.1: the real Fashion-MNIST files and fixtures that tests upload.
export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    plugins: [
      cloudflareTest(({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            ETL_TOKEN: "test-token",
            // The "official" source in tests: the real files, MD5s enforced.
            DEFAULT_SOURCE: `${inject("archiveServer")}/fashion-mnist`,
            FETCH_BACKOFF_MS: "10",
            FETCH_TIMEOUT_MS: "5000",
          },
          // A second database for test/migration.test.ts: one that the migrations reach step by step.
          d1Databases: { LEGACY_DB: "legacy-images" },
          // wrangler.toml's consumers, but redelivering a failed job at once:
          // Miniflare waits out retry_delay in real time, seconds per test.
          queueConsumers: {
            "idx-etl-jobs": {
              maxBatchSize: 1,
              maxBatchTimeout: 1,
              maxRetries: 2,
              deadLetterQueue: "idx-etl-dlq",
              retryDelay: 0,
            },
          },
        },
      })),
    ],
    test: {
      globalSetup: ["./test/global-setup.ts"],
      setupFiles: ["./test/apply-migrations.ts"],
      testTimeout: 60_000,
      hookTimeout: 60_000,
    },
  };
});
