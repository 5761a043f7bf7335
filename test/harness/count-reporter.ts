/**
 * Vitest reporter that ends the output with the plain line `N passed, N failed`, which CI and
 * people grep for. It runs after the default reporter, so that line is the last one.
 *
 * Counted: test cases (not suites). A file that fails to load, a failing `beforeAll`/`afterAll`
 * hook, and every unhandled error count as one failed test each, so no failure is invisible in
 * the count. Skipped and todo tests count as neither; their number goes on the line before.
 */
import type { Reporter, SerializedError, TestModule, TestSuite } from "vitest/node";

type Counts = { passed: number; failed: number; skipped: number };

function suiteErrors(entity: TestModule | TestSuite): number {
  let errors = entity.errors().length > 0 ? 1 : 0;
  for (const suite of entity.children.suites()) errors += suiteErrors(suite);
  return errors;
}

/** The count line's reporter (`reporters: ["default", countReporter]` in vitest.config.ts). */
export default class CountReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
  ): void {
    const counts: Counts = { passed: 0, failed: unhandledErrors.length, skipped: 0 };
    for (const module of testModules) {
      counts.failed += suiteErrors(module);
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") counts.passed++;
        else if (state === "failed") counts.failed++;
        else counts.skipped++;
      }
    }
    if (counts.skipped > 0) process.stdout.write(`${counts.skipped} skipped\n`);
    process.stdout.write(`${counts.passed} passed, ${counts.failed} failed\n`);
  }
}
