import type { RunEvent } from "../store/run-events.ts";
import type { StepRow } from "../store/run-rows.ts";
import { failedStepStates, type StepState } from "./state-machine.ts";

/**
 * The event for a step transition; its idempotency key is unique per attempt and fence. A
 * pending step that stays pending became ready (`step.ready`).
 */
export function stepEvent(step: StepRow, from: StepState, note?: "ready"): RunEvent {
  const failed = failedStepStates.has(step.state) && step.state !== "cancelled";
  return {
    type: `step.${note === "ready" ? "ready" : step.state}`,
    level: failed ? "error" : "info",
    stepId: step.step_id,
    message: step.reason || `step ${note === "ready" ? "ready" : step.state}`,
    metadata: {
      from,
      to: step.state,
      attempt: step.attempt,
      ...(step.exit_code === null ? {} : { exitCode: step.exit_code }),
      ...(step.next_attempt_at === null ? {} : { nextAttemptAt: step.next_attempt_at }),
    },
    idempotencyKey: `${step.run_id}/${step.step_id}/${note ?? step.state}/${step.attempt}/${step.fence}`,
  };
}

/** Why a failed step fails its run, as the run's reason says it. */
export function stepFailureReason(step: Pick<StepRow, "step_id" | "state" | "reason">): string {
  return `step "${step.step_id}" ${step.state.replace("_", " ")}${step.reason ? `: ${step.reason}` : ""}`;
}
