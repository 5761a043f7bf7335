import type { RunState, StepState } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";

// The state names are the public contract's (@packrun/contract), stored as they are spelled.
export {
  failedStepStates,
  type RunState,
  type StepState,
  terminalRunStates,
  terminalStepStates,
} from "@packrun/contract";

const stepTransitions: Readonly<Record<StepState, readonly StepState[]>> = {
  pending: ["running", "skipped", "awaiting-approval", "cancelled"],
  // running → pending: a failed attempt with attempts left, or a lost lease.
  running: ["succeeded", "failed", "timed_out", "cancelled", "pending"],
  "awaiting-approval": ["pending", "rejected", "expired", "cancelled"],
  succeeded: [],
  failed: [],
  timed_out: [],
  cancelled: [],
  skipped: [],
  rejected: [],
  expired: [],
};

const runTransitions: Readonly<Record<RunState, readonly RunState[]>> = {
  queued: ["running", "failed", "cancelled", "timed_out"],
  running: ["awaiting-approval", "succeeded", "failed", "cancelled", "timed_out"],
  "awaiting-approval": ["running", "failed", "cancelled", "timed_out"],
  succeeded: [],
  failed: [],
  cancelled: [],
  timed_out: [],
};

/** Throws INTERNAL when `from → to` is not a legal step transition. */
export function assertStepTransition(stepId: string, from: StepState, to: StepState): void {
  if (from === to || stepTransitions[from].includes(to)) return;
  throw new PackrunError("INTERNAL", `illegal step transition ${from} -> ${to} for step ${stepId}`);
}

/** Throws INTERNAL when `from → to` is not a legal run transition. */
export function assertRunTransition(runId: string, from: RunState, to: RunState): void {
  if (from === to || runTransitions[from].includes(to)) return;
  throw new PackrunError("INTERNAL", `illegal run transition ${from} -> ${to} for run ${runId}`);
}

/** True when `to` may follow `from` for a step. */
export function isLegalStepTransition(from: StepState, to: StepState): boolean {
  return from === to || stepTransitions[from].includes(to);
}
