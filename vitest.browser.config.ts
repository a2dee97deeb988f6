import { defineConfig } from "vitest/config";

// `npm run test:browser`: the end-to-end test in Chromium, kept out of `npm test` (it needs a browser and the bundle).
export default defineConfig({
  test: {
    include: ["test/browser/**/*.e2e.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
