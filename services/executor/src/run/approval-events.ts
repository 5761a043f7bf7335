import { randomUUID } from "node:crypto";
import type { RunEvent } from "../store/run-events.ts";

/** A refused approval as the run's evidence records it. */
export interface RefusedApproval {
  runId: string;
  approver: string;
  /** May be empty when no approval could be told. */
  approvalId: string;
  code: string;
  reason: string;
  /** The gate instance the event is recorded for, when known. */
  stepId: string | undefined;
  /** Extra metadata (an offline response, verbatim, for one). */
  evidence: Record<string, string> | undefined;
}

/** The `gate.approval_refused` event of a refusal: every attempt is an event of its own. */
export function approvalRefusedEvent(refusal: RefusedApproval): RunEvent {
  const gate = refusal.approvalId === "" ? "" : ` at gate "${refusal.approvalId}"`;
  return {
    type: "gate.approval_refused",
    level: "warn",
    ...(refusal.stepId === undefined ? {} : { stepId: refusal.stepId }),
    message: `approval by ${refusal.approver}${gate} refused (${refusal.code})${refusal.reason === "" ? "" : `: ${refusal.reason}`}`,
    metadata: {
      ...refusal.evidence,
      approver: refusal.approver,
      approvalId: refusal.approvalId,
      code: refusal.code,
    },
    idempotencyKey: `${refusal.runId}/approval-refused/${randomUUID()}`,
  };
}

/** The `gate.approved` / `gate.rejected` event of a decision (one per approver and gate). */
export function approvalDecidedEvent(decision: {
  runId: string;
  stepId: string;
  approvalId: string;
  approver: string;
  approve: boolean;
  comment: string;
  evidence: Record<string, string> | undefined;
}): RunEvent {
  return {
    type: decision.approve ? "gate.approved" : "gate.rejected",
    level: decision.approve ? "info" : "warn",
    stepId: decision.stepId,
    message: `${decision.approver} ${decision.approve ? "approved" : "rejected"}${decision.comment ? `: ${decision.comment}` : ""}`,
    metadata: {
      ...decision.evidence,
      approver: decision.approver,
      approvalId: decision.approvalId,
    },
    idempotencyKey: `${decision.runId}/${decision.stepId}/decision/${decision.approver}`,
  };
}
