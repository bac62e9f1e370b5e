import { defineConfig } from "vitest/config";

// Tests that run in Node, not in workerd: they drive `npm run etl` and
// wrangler dev as child processes, and Chromium for the dashboard, and check
// the OpenAPI document with ajv (which generates code: workerd forbids that),
// and Python's data libraries against wrangler dev (test/clients).
export default defineConfig({
  test: {
    include: ["test/browser/**/*.browser.ts", "test/cli/**/*.cli.ts", "test/clients/**/*.cli.ts"],
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
