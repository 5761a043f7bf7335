import { PackrunError } from "@packrun/errors";

/** States of a step; docs/state-machine.md draws the transitions. */
export type StepState =
  | "pending"
  | "running"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "skipped"
  | "awaiting-approval"
  | "rejected"
  | "expired";

/** States of a run. */
export type RunState =
  | "queued"
  | "running"
  | "awaiting-approval"
  | "succeeded"
  | "failed"
  | "cancelled";

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
  queued: ["running", "failed", "cancelled"],
  running: ["awaiting-approval", "succeeded", "failed", "cancelled"],
  "awaiting-approval": ["running", "failed", "cancelled"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/** Terminal step states: nothing happens to the step afterwards. */
export const terminalStepStates: ReadonlySet<StepState> = new Set([
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "skipped",
  "rejected",
  "expired",
]);

/** Terminal step states that count as a failure of the step. */
export const failedStepStates: ReadonlySet<StepState> = new Set([
  "failed",
  "timed_out",
  "rejected",
  "expired",
  "cancelled",
]);

/** Terminal run states. */
export const terminalRunStates: ReadonlySet<RunState> = new Set([
  "succeeded",
  "failed",
  "cancelled",
]);

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
