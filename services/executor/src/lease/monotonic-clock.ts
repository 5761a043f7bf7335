/**
 * Milliseconds on the machine's monotonic clock (CLOCK_MONOTONIC). Unlike `performance.now()`,
 * whose origin differs per thread, this reading is comparable between the worker's main thread
 * and its watchdog thread.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000n) / 1_000;
}
