import type { RunRow, StepRow } from "../store/run-rows.ts";
import { retryDelaySeconds } from "./retry-delay.ts";
import { terminalRunStates } from "./state-machine.ts";
import type { StepChange } from "./step-change.ts";

/**
 * How an attempt of a `run` step ended:
 * - `reported`: its worker reports the runtime's outcome (`permanent`: the cause is in the
 *   pack itself, so retrying cannot help);
 * - `handed-back`: its worker gave it back unfinished (draining, or its lease ran out);
 * - `lost`: its lease expired without a report (the reconciler takes it back).
 */
export type AttemptEnd =
  | {
      kind: "reported";
      outcome: "succeeded" | "failed" | "timed_out" | "cancelled";
      exitCode: number | null;
      reason: string;
      outputs: Record<string, unknown>;
      permanent: boolean;
    }
  | { kind: "handed-back"; exitCode: number | null; reason: string }
  | { kind: "lost"; owner: string | null; maxLostAttempts: number };

/** The decision for an ended attempt: the step's change and whether it is dead-lettered. */
export interface AttemptDecision {
  change: StepChange;
  /** The step failed for good: record it as a dead letter with this reason. */
  deadLetter?: string;
}

/**
 * The one end-of-attempt rule (retry, hand back, cancel or fail), used by the step worker, the
 * reconciler (lost leases) and cancellation (a stopped step reports `cancelled`). A failed
 * attempt is retried while attempts are left and the run goes on; an attempt lost or handed back
 * does not use the retry budget (lost ones have their own limit); after the run ended nothing is
 * retried. `random` is the retry jitter's source (tests pass a fixed one).
 */
export function onAttemptEnded(
  run: Pick<RunRow, "state">,
  step: Pick<StepRow, "attempt" | "failed_attempts" | "lost_attempts" | "max_attempts" | "planned">,
  end: AttemptEnd,
  random: () => number = Math.random,
): AttemptDecision {
  const runEnded = terminalRunStates.has(run.state);
  if (end.kind === "lost") {
    const common = { releaseLease: true, newFence: true } as const;
    const lost = step.lost_attempts + 1;
    if (runEnded)
      return {
        change: {
          ...common,
          to: "cancelled",
          finished: true,
          reason: `worker ${end.owner} lost after the run ended`,
        },
      };
    if (lost > end.maxLostAttempts)
      return {
        change: {
          ...common,
          to: "failed",
          finished: true,
          lostAttempts: lost,
          reason: `lost its worker ${lost} times`,
        },
      };
    return {
      change: {
        ...common,
        to: "pending",
        readyInSeconds: 0,
        lostAttempts: lost,
        reason: `attempt ${step.attempt} lost with worker ${end.owner}; retrying elsewhere`,
      },
    };
  }
  const common = { releaseLease: true, exitCode: end.exitCode, reason: end.reason } as const;
  if (end.kind === "handed-back")
    return {
      change: runEnded
        ? { ...common, to: "cancelled", finished: true, reason: "handed back after the run ended" }
        : {
            ...common,
            to: "pending",
            readyInSeconds: 0,
            lostAttempts: step.lost_attempts + 1,
            reason: "handed back by a draining worker",
          },
    };
  if (end.outcome === "succeeded")
    return { change: { ...common, to: "succeeded", finished: true, outputs: end.outputs } };
  if (end.outcome === "cancelled")
    return { change: { ...common, to: "cancelled", finished: true } };
  const failures = step.failed_attempts + 1;
  if (!end.permanent && failures < step.max_attempts && !runEnded) {
    const delay = retryDelaySeconds(step.planned.failure, failures, random);
    return {
      change: {
        ...common,
        to: "pending",
        failedAttempts: failures,
        readyInSeconds: delay,
        retryInSeconds: delay,
        reason: `attempt ${step.attempt} ${end.outcome.replace("_", " ")}: ${end.reason}; retrying in ${delay}s`,
      },
    };
  }
  return {
    change: { ...common, to: end.outcome, failedAttempts: failures, finished: true },
    deadLetter: end.reason,
  };
}
