/**
 * Conversions from the internal protobuf messages to the public JSON shapes of
 * api-schemas.ts. Written out by hand, not proto3 JSON: the REST API names states the way the
 * docs do (`awaiting-approval`, not `RUN_STATE_AWAITING_APPROVAL`) and omits empty fields.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { runStateFromProto, runStateToProto, stepStateFromProto } from "@packrun/contract/proto";
import type { Artifact, Event } from "@packrun/proto/evidence/v1";
import { EventLevel } from "@packrun/proto/evidence/v1";
import type { Gate, Run, RunState, Step, StepAttempt, StepState } from "@packrun/proto/executor/v1";
import {
  type DeclaredOutput,
  type SimulatedStep,
  SimulationStatus,
  StepKind,
} from "@packrun/proto/pack/v1";
import type { PackVersion, SimulatePackResponse } from "@packrun/proto/planner/v1";
import type {
  ArtifactJson,
  GateJson,
  PackVersionJson,
  RunEventJson,
  RunJson,
  RunStateName,
  StepAttemptJson,
  StepJson,
  StepKindName,
  StepStateName,
} from "./api-schemas.ts";
import { runLinksJson } from "./run-links-json.ts";

const stepKinds: Record<StepKind, StepKindName> = {
  [StepKind.UNSPECIFIED]: "run",
  [StepKind.RUN]: "run",
  [StepKind.PARALLEL]: "parallel",
  [StepKind.MAP]: "map",
  [StepKind.APPROVAL_GATE]: "approval-gate",
  [StepKind.POLICY_GATE]: "policy-gate",
};

/** The API name of a run state (UNSPECIFIED reads as queued: nothing happened yet). */
export function runStateName(state: RunState): RunStateName {
  return runStateFromProto(state) ?? "queued";
}

/** The API name of a step state (UNSPECIFIED reads as pending). */
export function stepStateName(state: StepState): StepStateName {
  return stepStateFromProto(state) ?? "pending";
}

/** The enum value of an API run state name. */
export const runStateValue: (name: RunStateName) => RunState = runStateToProto;

function time(value: Timestamp | undefined): string | undefined {
  return value === undefined ? undefined : timestampDate(value).toISOString();
}

/** `T` with properties that may be undefined made optional instead. */
type Defined<T> = {
  [K in keyof T as undefined extends T[K] ? never : K]: T[K];
} & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/**
 * Copies the entries of `fields` that are neither undefined nor empty strings, so optional
 * JSON fields are absent rather than null or "".
 */
function defined<T extends Record<string, unknown>>(fields: T): Defined<T> {
  return Object.fromEntries(
    Object.entries(fields).filter(([, value]) => value !== undefined && value !== ""),
  ) as Defined<T>;
}

function nonEmptyObject(value: JsonObject | undefined): Record<string, unknown> | undefined {
  return value !== undefined && Object.keys(value).length > 0 ? value : undefined;
}

/** The proto's -1 ("did not exit normally": killed, timed out, never started) is no exit code. */
function exitCode(value: number): number | undefined {
  return value < 0 ? undefined : value;
}

/** The API shape of one step attempt. */
export function attemptJson(attempt: StepAttempt): StepAttemptJson {
  return defined({
    attempt: attempt.attempt,
    state: stepStateName(attempt.state),
    startedAt: time(attempt.startedAt),
    finishedAt: time(attempt.finishedAt),
    exitCode: attempt.finishedAt === undefined ? undefined : exitCode(attempt.exitCode),
    reason: attempt.reason,
    workerId: attempt.workerId,
    cpuMicros: Number(attempt.cpuMicros),
    peakMemoryBytes: Number(attempt.peakMemoryBytes),
  });
}

function stepJson(step: Step): StepJson {
  return defined({
    id: step.id,
    parentId: step.parentId,
    kind: stepKinds[step.kind],
    state: stepStateName(step.state),
    attempt: step.attempt,
    maxAttempts: step.maxAttempts,
    nextAttemptAt: time(step.nextAttemptAt),
    reason: step.reason,
    exitCode:
      step.finishedAt === undefined || step.kind !== StepKind.RUN
        ? undefined
        : exitCode(step.exitCode),
    startedAt: time(step.startedAt),
    finishedAt: time(step.finishedAt),
    durationMs: step.finishedAt === undefined ? undefined : Number(step.durationMs),
    outputs: nonEmptyObject(step.outputs),
    attempts: step.attempts.map(attemptJson),
  });
}

/** The API shape of a gate. */
export function gateJson(gate: Gate): GateJson {
  return defined({
    stepId: gate.stepId,
    gateId: gate.gateRef,
    kind: gate.kind === StepKind.POLICY_GATE ? ("policy" as const) : ("approval" as const),
    state: stepStateName(gate.state),
    requiredApprovals: gate.requiredApprovals,
    grants: [...gate.grants],
    decisions: gate.decisions.map((decision) =>
      defined({
        approver: decision.approver,
        approved: decision.approved,
        comment: decision.comment,
        decidedAt: time(decision.decidedAt),
      }),
    ),
    expiresAt: time(gate.expiresAt),
    message: gate.message,
  });
}

/** The API shape of a run. */
export function runJson(run: Run): RunJson {
  const gates = run.gates.map(gateJson);
  return defined({
    id: run.id,
    pack: { name: run.packName, version: run.packVersion, digest: run.packDigest },
    planHash: run.planHash,
    state: runStateName(run.state),
    priority: run.priority,
    reason: run.reason,
    createdAt: time(run.createdAt) ?? new Date(0).toISOString(),
    startedAt: time(run.startedAt),
    finishedAt: time(run.finishedAt),
    submittedBy: run.submittedBy,
    labels: { ...run.labels },
    outputs: nonEmptyObject(run.outputs),
    steps: run.steps.map(stepJson),
    gates,
    pendingGates: gates
      .filter((gate) => gate.kind === "approval" && gate.state === "awaiting-approval")
      .map((gate) => gate.gateId),
    ...runLinksJson(run),
    notBefore: time(run.notBefore),
    waitingReason: run.waitingReason,
    timeoutSeconds: run.timeoutSeconds === 0 ? undefined : run.timeoutSeconds,
    deadlineAt: time(run.deadlineAt),
    schedule:
      run.scheduleId === "" || run.scheduledFor === undefined
        ? undefined
        : { id: run.scheduleId, dueAt: time(run.scheduledFor) ?? "" },
  });
}

const levels: Record<EventLevel, RunEventJson["level"]> = {
  [EventLevel.UNSPECIFIED]: "info",
  [EventLevel.TRACE]: "debug",
  [EventLevel.DEBUG]: "debug",
  [EventLevel.INFO]: "info",
  [EventLevel.WARN]: "warn",
  [EventLevel.ERROR]: "error",
};

/** The last event time converted: a flood's lines share their millisecond, so most hit it. */
let lastEventTime: { seconds: bigint; nanos: number; text: string } | undefined;

function eventTime(value: Timestamp | undefined): string {
  if (value === undefined) return new Date(0).toISOString();
  const last = lastEventTime;
  if (last !== undefined && last.seconds === value.seconds && last.nanos === value.nanos)
    return last.text;
  const text = timestampDate(value).toISOString();
  lastEventTime = { seconds: value.seconds, nanos: value.nanos, text };
  return text;
}

/**
 * The API shape of one event of a run's log. Built field by field (not through `defined`): it
 * runs once per line per subscriber, the gateway's hottest code under a log flood. `message` is
 * always present, even empty (the schema requires it).
 */
export function runEventJson(event: Event): RunEventJson {
  const head = {
    sequence: Number(event.sequence),
    time: eventTime(event.time),
    level: levels[event.level],
    type: event.type,
  };
  // Same key order as every other response: stepId before message.
  const json: RunEventJson =
    event.stepId === ""
      ? { ...head, message: event.message }
      : { ...head, stepId: event.stepId, message: event.message };
  const metadata = nonEmptyObject(event.metadata);
  if (metadata !== undefined) json.metadata = metadata;
  return json;
}

/** The API shape of an artifact; `downloadUrl` is relative to the gateway. */
export function artifactJson(artifact: Artifact): ArtifactJson {
  return defined({
    stepId: artifact.stepId,
    name: artifact.name,
    type: artifact.type,
    digest: artifact.digest,
    sizeBytes: Number(artifact.sizeBytes),
    sourcePath: artifact.sourcePath,
    status: artifact.status,
    createdAt: time(artifact.createdAt),
    downloadUrl: `/api/runs/${encodeURIComponent(artifact.runId)}/artifacts/${artifact.digest}`,
  });
}

/** The API shape of a registered pack version. */
export function packVersionJson(version: PackVersion): PackVersionJson {
  return defined({
    name: version.name,
    version: version.version,
    digest: version.digest,
    description: version.description,
    tags: [...version.tags],
    publishedAt: time(version.publishedAt),
    publishedBy: version.publishedBy,
  });
}

const simulationStatuses = {
  [SimulationStatus.UNSPECIFIED]: "pending",
  [SimulationStatus.PENDING]: "pending",
  [SimulationStatus.SKIPPED]: "skipped",
  [SimulationStatus.REQUIRES_APPROVAL]: "requires-approval",
  [SimulationStatus.REQUIRES_POLICY]: "requires-policy",
} as const;

interface SimulatedStepJson {
  id: string;
  name?: string;
  kind: StepKindName;
  status: (typeof simulationStatuses)[SimulationStatus];
  reason?: string;
  uses?: string;
  gateRef?: string;
  runtimeDependent: boolean;
  children: SimulatedStepJson[];
}

function simulatedStepJson(step: SimulatedStep): SimulatedStepJson {
  return {
    ...defined({
      id: step.id,
      name: step.name,
      kind: stepKinds[step.kind],
      status: simulationStatuses[step.status],
      reason: step.reason,
      uses: step.uses,
      gateRef: step.gateRef,
    }),
    runtimeDependent: step.runtimeDependent,
    children: step.children.map(simulatedStepJson),
  };
}

function declaredOutputJson(output: DeclaredOutput) {
  return defined({
    name: output.name,
    type: output.type,
    path: output.path,
    expression: output.expression,
  });
}

/** The API shape of a simulation. */
export function simulationJson(response: SimulatePackResponse) {
  const summary = response.summary;
  return {
    planHash: response.planHash,
    pack: {
      name: summary?.packName ?? "",
      version: summary?.packVersion ?? "",
      digest: summary?.packDigest ?? "",
    },
    stepCount: summary?.stepCount ?? 0,
    sandboxMode: summary?.sandboxMode ?? "open",
    approvals: (summary?.approvals ?? []).map((approval) =>
      defined({
        id: approval.id,
        grants: [...approval.grants],
        required: approval.required,
        expiresAfterSeconds:
          approval.expiresAfterSeconds === 0n ? undefined : Number(approval.expiresAfterSeconds),
        reason: approval.reason,
      }),
    ),
    secretNames: [...(summary?.secretNames ?? [])],
    policyNames: [...(summary?.policyNames ?? [])],
    steps: response.steps.map(simulatedStepJson),
    outputs: response.outputs.map(declaredOutputJson),
  };
}
