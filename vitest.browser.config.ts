import { defineConfig } from "vitest/config";

// The browser test runs in Node (it drives wrangler dev and Chromium), not in workerd.
export default defineConfig({
  test: {
    include: ["test/browser/**/*.browser.ts"],
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
