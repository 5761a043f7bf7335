/**
 * Run and step states as the REST API, the CLI, the executor's database, the metrics and the
 * docs spell them (docs/state-machine.md): the one list every other copy is derived from. The
 * spelling is the one the OpenAPI document has always promised, `awaiting-approval` beside
 * `timed_out`; the protobuf enums (RUN_STATE_*, STEP_STATE_*) keep their own names and are
 * mapped in proto-states.ts only.
 */

/** Every run state, in lifecycle order. */
export const runStates = [
  "queued",
  "running",
  "awaiting-approval",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
] as const;

/** State of a run. */
export type RunState = (typeof runStates)[number];

/** Every step state, in lifecycle order. */
export const stepStates = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "skipped",
  "awaiting-approval",
  "rejected",
  "expired",
] as const;

/** State of a step. */
export type StepState = (typeof stepStates)[number];

/** Run states after which nothing changes any more. */
export const terminalRunStates: ReadonlySet<RunState> = new Set<RunState>([
  "succeeded",
  "failed",
  "cancelled",
  // The run's deadline (spec.timeout, or the submission's shorter one) passed.
  "timed_out",
]);

/** Step states after which nothing happens to the step any more. */
export const terminalStepStates: ReadonlySet<StepState> = new Set<StepState>([
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "skipped",
  "rejected",
  "expired",
]);

/** Terminal step states that count as a failure of the step (and of its block and run). */
export const failedStepStates: ReadonlySet<StepState> = new Set<StepState>([
  "failed",
  "timed_out",
  "rejected",
  "expired",
  "cancelled",
]);

/** True when `value` is a run state name. */
export function isRunState(value: string): value is RunState {
  return (runStates as readonly string[]).includes(value);
}

/** True when `value` is a step state name. */
export function isStepState(value: string): value is StepState {
  return (stepStates as readonly string[]).includes(value);
}
