/**
 * The one mapping between the state names of states.ts and the protobuf enums of
 * packrun.executor.v1. The enum names stay as published (renaming them is a breaking change
 * `buf breaking` refuses); everything else speaks the names.
 */
import { RunState as RunStateEnum, StepState as StepStateEnum } from "@packrun/proto/executor/v1";
import type { RunState, StepState } from "./states.ts";

const runStateEnums: Readonly<Record<RunState, RunStateEnum>> = {
  queued: RunStateEnum.QUEUED,
  running: RunStateEnum.RUNNING,
  "awaiting-approval": RunStateEnum.AWAITING_APPROVAL,
  succeeded: RunStateEnum.SUCCEEDED,
  failed: RunStateEnum.FAILED,
  cancelled: RunStateEnum.CANCELLED,
  timed_out: RunStateEnum.TIMED_OUT,
};

const stepStateEnums: Readonly<Record<StepState, StepStateEnum>> = {
  pending: StepStateEnum.PENDING,
  running: StepStateEnum.RUNNING,
  succeeded: StepStateEnum.SUCCEEDED,
  failed: StepStateEnum.FAILED,
  timed_out: StepStateEnum.TIMED_OUT,
  cancelled: StepStateEnum.CANCELLED,
  skipped: StepStateEnum.SKIPPED,
  "awaiting-approval": StepStateEnum.AWAITING_APPROVAL,
  rejected: StepStateEnum.REJECTED,
  expired: StepStateEnum.EXPIRED,
};

const runStateNames = new Map(
  Object.entries(runStateEnums).map(([name, value]) => [value, name as RunState]),
);
const stepStateNames = new Map(
  Object.entries(stepStateEnums).map(([name, value]) => [value, name as StepState]),
);

/** The enum value of a run state. */
export function runStateToProto(state: RunState): RunStateEnum {
  return runStateEnums[state];
}

/** The enum value of a step state. */
export function stepStateToProto(state: StepState): StepStateEnum {
  return stepStateEnums[state];
}

/** The name of a run state enum value; undefined for UNSPECIFIED or an unknown value. */
export function runStateFromProto(value: RunStateEnum): RunState | undefined {
  return runStateNames.get(value);
}

/** The name of a step state enum value; undefined for UNSPECIFIED or an unknown value. */
export function stepStateFromProto(value: StepStateEnum): StepState | undefined {
  return stepStateNames.get(value);
}
