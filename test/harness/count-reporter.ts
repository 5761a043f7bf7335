/**
 * Vitest reporter that ends the output with the plain line `N passed, N failed`, which CI and
 * people grep for. It runs after the default reporter, so that line is the last one.
 *
 * Counted: test cases (not suites). A file that fails to load, a failing `beforeAll`/`afterAll`
 * hook, and every unhandled error count as one failed test each, so no failure is invisible in
 * the count. Skipped and todo tests count as neither; their number goes on the line before.
 *
 * With coverage on, Vitest prints the coverage summary after the run's end: the line then waits
 * for `onFinishedReportCoverage` (or, should that never come, the process's exit).
 */
import { writeSync } from "node:fs";
import type { Reporter, SerializedError, TestModule, TestSuite, Vitest } from "vitest/node";

type Counts = { passed: number; failed: number; skipped: number };

function suiteErrors(entity: TestModule | TestSuite): number {
  let errors = entity.errors().length > 0 ? 1 : 0;
  for (const suite of entity.children.suites()) errors += suiteErrors(suite);
  return errors;
}

/** The count line's reporter (`reporters: ["default", countReporter]` in vitest.config.ts). */
export default class CountReporter implements Reporter {
  #coverage = false;
  #pending: string | null = null;

  onInit(vitest: Vitest): void {
    this.#coverage = vitest.config.coverage.enabled;
    process.once("exit", () => this.#flush());
  }

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
    this.#pending =
      (counts.skipped > 0 ? `${counts.skipped} skipped\n` : "") +
      `${counts.passed} passed, ${counts.failed} failed\n`;
    if (!this.#coverage) this.#flush();
  }

  /** Called by Vitest once the coverage report (and its summary) is written. */
  onFinishedReportCoverage(): void {
    this.#flush();
  }

  #flush(): void {
    if (this.#pending === null) return;
    writeSync(1, this.#pending);
    this.#pending = null;
  }
}
