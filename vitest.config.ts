/**
 * Vitest configuration of `npm test` (and `npm run test:watch`, `npm run coverage`).
 *
 * Every `*.test.ts` beside the code (packages, services), the cross-service suites under test/
 * and the runnable documentation under docs/ run against a real PostgreSQL 15 and Redis that
 * test/harness/global-setup.ts starts on loopback. The slow suite (test/slow) restarts those
 * servers, so it has its own configuration: vitest.slow.config.ts (`npm run test:slow`).
 *
 * Tunables (environment): PACKRUN_TEST_CONCURRENCY (test files run at once, default 2..4 by cores).
 */
import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";
import { coverageThresholds } from "./test/harness/coverage-thresholds.ts";

const concurrency =
  Number.parseInt(process.env.PACKRUN_TEST_CONCURRENCY ?? "", 10) ||
  Math.min(4, Math.max(2, availableParallelism()));

export default defineConfig({
  test: {
    include: [
      "packages/*/src/**/*.test.ts",
      "services/*/src/**/*.test.ts",
      "test/**/*.test.ts",
      "docs/**/*.test.ts",
    ],
    exclude: ["**/node_modules/**", "test/slow/**"],
    globalSetup: ["./test/harness/global-setup.ts"],
    // Each file in a process of its own: files spawn services, change process.env and install
    // signal handlers, which threads would share.
    pool: "forks",
    maxWorkers: concurrency,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: ["default", "./test/harness/count-reporter.ts"],
    coverage: {
      provider: "v8",
      include: ["packages/*/src/**/*.ts", "services/*/src/**/*.ts"],
      exclude: [
        "**/*.test.ts",
        "packages/proto/src/gen/**",
        "**/testing/**",
        "**/test-*.ts",
        // Run by `npm install` (postinstall) as a process of its own, never inside a test file;
        // what it calls (pglite-template.ts) is tested and counted.
        "packages/db/src/prepare-pglite-template.ts",
      ],
      reporter: ["text-summary", "html", "lcov", "json-summary"],
      reportsDirectory: "coverage",
      // CI prints the summary whatever the tests did.
      reportOnFailure: true,
      thresholds: coverageThresholds,
    },
  },
});
