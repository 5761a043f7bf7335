import type { StepExecutionResult } from "../runtime/types.ts";

/** A result plus how the worker, not the step, ended it. */
export type RecordedResult = StepExecutionResult & { permanent?: boolean; handedBack?: boolean };

/** Failures whose cause is in the pack itself: retrying cannot help. */
export class PermanentStepError extends Error {}

/** Abort reason: this worker no longer holds the step's lease. */
export class LeaseLost extends Error {}

/** Abort reason: the run ended (cancelled, failed, timed out) while the step ran. */
export class RunEnded extends Error {}

/** Abort reason: a draining worker gives the step back to the queue. */
export class HandBack extends Error {}

/** A failed result the worker records itself (the step did not report one). */
export function failure(reason: string, permanent: boolean): RecordedResult {
  return {
    outcome: "failed",
    exitCode: null,
    signal: null,
    reason,
    durationMs: 0,
    cpuMicros: 0,
    peakMemoryBytes: 0,
    outputs: {},
    artifacts: [],
    logTruncated: false,
    permanent,
  };
}
