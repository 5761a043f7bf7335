import type { PlannedStep } from "@packrun/planning";
import type { RunEvent } from "../store/run-events.ts";
import type { StepChange } from "./step-change.ts";

/** An approval the plan declares (`plan.approvals[]`). */
export interface PlannedApproval {
  id: string;
  required: number;
  expiresAfterSeconds: number | null;
}

/** An approval gate is reached: it waits for decisions, until its approval expires. */
export function awaitApprovalChange(
  gate: Extract<PlannedStep, { kind: "approval-gate" }>,
  approval: PlannedApproval | undefined,
): StepChange {
  return {
    to: "awaiting-approval",
    readyInSeconds: 0,
    expiresInSeconds: approval?.expiresAfterSeconds ?? null,
    reason: `awaiting ${approval?.required ?? 1} approval(s) "${gate.gate.approvalId}"`,
  };
}

/** A recorded decision on a gate awaiting approval, with the gate's approvals so far. */
export interface ApprovalDecided {
  approve: boolean;
  approver: string;
  comment: string;
  /** Approving decisions recorded for this gate, this one included. */
  approvals: number;
  required: number;
}

/**
 * The gate's changes after a decision: one rejection rejects it; enough approvals pass it
 * (awaiting → pending → running → succeeded, each step of the way legal and evidenced); fewer
 * leave it waiting (no change).
 */
export function onApprovalDecided(decision: ApprovalDecided): StepChange[] {
  const comment = decision.comment ? `: ${decision.comment}` : "";
  if (!decision.approve)
    return [
      { to: "rejected", finished: true, reason: `rejected by ${decision.approver}${comment}` },
    ];
  if (decision.approvals < decision.required) return [];
  return [
    { to: "pending", reason: `approved by ${decision.approvals} approver(s)` },
    { to: "running", started: true },
    { to: "succeeded", finished: true },
  ];
}

/** A gate whose approval request expired before enough decisions came. */
export const gateExpiredChange: StepChange = {
  to: "expired",
  finished: true,
  reason: "approval request expired",
};

/** How a policy gate's evaluation came out: passed or not, or why it could not be evaluated. */
export type PolicyEvaluation =
  | { policy: string; expression: string; passed: boolean }
  | { policy: string; error: string };

/**
 * A policy gate's result: a denial (or a policy that cannot be evaluated) fails the gate
 * unless its failAction is `warn`; the gate's outputs and event say why either way.
 */
export function policyGateOutcome(
  runId: string,
  stepId: string,
  failAction: "fail" | "warn",
  evaluation: PolicyEvaluation,
): { event: RunEvent; change: StepChange } {
  const passed = "passed" in evaluation && evaluation.passed;
  const reason =
    "error" in evaluation
      ? `policy "${evaluation.policy}" could not be evaluated: ${evaluation.error}`
      : passed
        ? `policy "${evaluation.policy}" passed`
        : `policy "${evaluation.policy}" denied: \`${evaluation.expression}\` is false`;
  const warnOnly = !passed && failAction === "warn";
  const outputs = { decision: passed ? "allow" : "deny", failAction, reason };
  return {
    event: {
      type: "gate.policy",
      level: passed ? "info" : warnOnly ? "warn" : "error",
      stepId,
      message: reason,
      metadata: outputs,
      idempotencyKey: `${runId}/${stepId}/policy`,
    },
    change: {
      to: passed || warnOnly ? "succeeded" : "failed",
      finished: true,
      outputs,
      reason: warnOnly ? `${reason} (failAction warn)` : reason,
    },
  };
}
