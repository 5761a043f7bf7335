import type { Queryable } from "@packrun/db";
import type { ApprovalRequest } from "../rpc/run-service.ts";
import {
  insertGateDecision,
  readApprovalFacts,
  spendApprovalToken,
} from "../store/approval-store.ts";
import {
  type ApprovalDecision,
  credentialApprover,
  credentialTokenId,
  decideApprovalGate,
} from "./approval-decision.ts";
import { approvalDecidedEvent } from "./approval-events.ts";
import type { RunScheduler } from "./scheduler.ts";

/**
 * Decides `request` with {@link decideApprovalGate} over the run's gates as stored, inside the
 * transaction holding the run's lock, and applies an accepted decision: spends the token,
 * records the approver's decision and its event, and rejects or opens the gate when the quorum
 * is reached. A refusal is returned untouched (nothing was written for it).
 */
export async function decideUnderLock(
  tx: Queryable,
  scheduler: RunScheduler,
  request: ApprovalRequest,
): Promise<ApprovalDecision> {
  const { run } = scheduler;
  const tokenId = credentialTokenId(request.credential);
  const { gates, tokenSpent } = await readApprovalFacts(tx, run.id, request.tenant, tokenId);
  const decision = decideApprovalGate({
    tenant: request.tenant,
    run: { id: run.id, planHash: run.plan_hash },
    gates,
    credential: request.credential,
    named: request.named,
    approve: request.approve,
    tokenSpent,
  });
  if (decision.kind === "refuse") return decision;
  const { gate, approver } = decision;
  const token = { tenant: request.tenant, tokenId, runId: run.id, stepId: gate.stepId, approver };
  if (!(await spendApprovalToken(tx, token)))
    // Only a concurrent use of the same token on another run of the tenant gets here.
    return {
      kind: "refuse",
      code: "APPROVAL_TOKEN_REUSED",
      reason: `this approval token was already used; approval tokens are single-use: get a new one bound to gate "${gate.stepId}"`,
      approver: credentialApprover(request.credential),
      approvalId: gate.approvalId,
      gateStepId: gate.stepId,
    };
  if (!decision.newApprover) return decision;
  await insertGateDecision(tx, {
    runId: run.id,
    stepId: gate.stepId,
    approver,
    approved: request.approve,
    comment: request.comment,
  });
  await scheduler.events([
    approvalDecidedEvent({
      runId: run.id,
      stepId: gate.stepId,
      approvalId: gate.approvalId,
      approver,
      approve: request.approve,
      comment: request.comment,
      evidence: request.evidence,
    }),
  ]);
  await moveGate(scheduler, decision, request.approve, request.comment);
  return decision;
}

/**
 * Hands the recorded decision to the life cycle ({@link RunScheduler.decide}), which rejects the
 * gate, opens it once the quorum is reached, or leaves it waiting (gates.ts).
 */
async function moveGate(
  scheduler: RunScheduler,
  decision: Extract<ApprovalDecision, { kind: "accept" }>,
  approve: boolean,
  comment: string,
): Promise<void> {
  if (decision.gateOutcome === "waits") return;
  const step = await scheduler.step(decision.gate.stepId);
  if (step === undefined) return;
  await scheduler.decide(step, {
    type: "approval-decided",
    approve,
    approver: decision.approver,
    comment,
    approvals: decision.approvals,
    required: decision.gate.required,
  });
}
