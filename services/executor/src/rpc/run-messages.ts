import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { isStepState } from "@packrun/contract";
import { runStateToProto, stepStateToProto } from "@packrun/contract/proto";
import {
  ApprovalDecisionSchema,
  GateSchema,
  type Run,
  RunSchema,
  type Step,
  StepAttemptSchema,
  StepSchema,
} from "@packrun/proto/executor/v1";
import { StepKind } from "@packrun/proto/pack/v1";
import type { RunRow, StepRow } from "../store/run-rows.ts";
import type { RunView } from "./run-service.ts";

const stepKinds: Record<StepRow["kind"], StepKind> = {
  run: StepKind.RUN,
  parallel: StepKind.PARALLEL,
  map: StepKind.MAP,
  "approval-gate": StepKind.APPROVAL_GATE,
  "policy-gate": StepKind.POLICY_GATE,
};

const time = (value: Date | null) => (value === null ? undefined : timestampFromDate(value));

function stepMessage(step: StepRow, view: RunView): Step {
  const duration =
    step.started_at !== null && step.finished_at !== null
      ? step.finished_at.getTime() - step.started_at.getTime()
      : 0;
  return create(StepSchema, {
    id: step.step_id,
    parentId: step.parent_id ?? "",
    kind: stepKinds[step.kind],
    state: stepStateToProto(step.state),
    attempt: step.attempt,
    maxAttempts: step.max_attempts,
    nextAttemptAt: time(step.next_attempt_at),
    reason: step.reason,
    exitCode: step.exit_code ?? -1,
    startedAt: time(step.started_at),
    finishedAt: time(step.finished_at),
    durationMs: BigInt(Math.max(0, duration)),
    outputs: step.outputs as never,
    attempts: view.attempts
      .filter((attempt) => attempt.step_id === step.step_id)
      .map((attempt) =>
        create(StepAttemptSchema, {
          attempt: attempt.attempt,
          state: stepStateToProto(isStepState(attempt.state) ? attempt.state : "failed"),
          startedAt: time(attempt.started_at),
          finishedAt: time(attempt.finished_at),
          exitCode: attempt.exit_code ?? -1,
          reason:
            attempt.state === "lost" || attempt.state === "handed-back"
              ? `${attempt.state}: ${attempt.reason}`
              : attempt.reason,
          workerId: attempt.worker_id,
          cpuMicros: BigInt(attempt.cpu_micros ?? 0),
          peakMemoryBytes: BigInt(attempt.peak_memory_bytes ?? 0),
        }),
      ),
  });
}

/** A run summary (no steps), as listings return it. */
export function runSummaryMessage(run: RunRow): Run {
  return create(RunSchema, {
    id: run.id,
    tenant: run.tenant,
    packName: run.pack_name,
    packVersion: run.pack_version,
    packDigest: run.pack_digest,
    planHash: run.plan_hash,
    state: runStateToProto(run.state),
    priority: run.priority,
    reason: run.reason,
    createdAt: time(run.created_at),
    startedAt: time(run.started_at),
    finishedAt: time(run.finished_at),
    submittedBy: run.submitted_by,
    labels: run.labels,
    outputs: run.outputs as never,
    notBefore: time(run.not_before),
    timeoutSeconds: run.timeout_seconds,
    deadlineAt: time(run.deadline_at),
    scheduleId: run.schedule_id ?? "",
    scheduledFor: time(run.scheduled_for),
    waitingReason: run.state === "queued" ? run.waiting_reason : "",
  });
}

/** A run with its steps, attempts and gates. */
export function runMessage(view: RunView): Run {
  const run = runSummaryMessage(view.run);
  run.steps = view.steps.map((step) => stepMessage(step, view));
  run.gates = view.steps
    .filter((step) => step.kind === "approval-gate" || step.kind === "policy-gate")
    .map((step) => {
      const planned = step.planned;
      const approval =
        planned.kind === "approval-gate"
          ? view.approvals.find((each) => each.id === planned.gate.approvalId)
          : undefined;
      return create(GateSchema, {
        stepId: step.step_id,
        gateRef:
          planned.kind === "approval-gate"
            ? planned.gate.approvalId
            : planned.kind === "policy-gate"
              ? planned.gate.policy
              : "",
        kind: stepKinds[step.kind],
        state: stepStateToProto(step.state),
        requiredApprovals: planned.kind === "approval-gate" ? (approval?.required ?? 1) : 0,
        decisions: view.decisions
          .filter((decision) => decision.step_id === step.step_id)
          .map((decision) =>
            create(ApprovalDecisionSchema, {
              approver: decision.approver,
              approved: decision.approved,
              comment: decision.comment,
              decidedAt: time(decision.decided_at),
            }),
          ),
        expiresAt: time(step.expires_at),
        message: planned.kind === "approval-gate" ? planned.gate.message : step.reason,
        // Plans stored before grants existed have none: anyone may approve.
        grants: approval?.grants ?? [],
      });
    });
  return run;
}
