import { approvalTokenId, gateOfBinding, type Principal } from "@packrun/auth";
import { type ErrorCode, PackrunError } from "@packrun/errors";
import type { DecideApprovalRequest } from "@packrun/proto/executor/v1";
import { runMessage } from "./run-messages.ts";
import type { RunService } from "./run-service.ts";

/** What {@link RunService.decideApproval} takes. */
type Decision = Parameters<RunService["decideApproval"]>[0];

/**
 * A DecideApproval called directly with a bearer token (the public gRPC API): the same checks
 * the gateway makes for REST, made here because no gateway stands in between. The token must be
 * bound (pack_run_id, pack_gate_id, pack_plan_hash) to this run, one gate instance and the run's
 * plan; its subject is the approver, its groups must hold one of the gate's grants, and its id
 * makes it single-use. Every refusal after the run was found is written to the run's evidence.
 * @throws PackrunError RUN_NOT_FOUND, APPROVAL_TOKEN_MISMATCH, APPROVAL_STALE,
 *   GATE_NOT_AWAITING or PERMISSION_DENIED
 */
export async function tokenApprovalDecision(
  runs: RunService,
  request: DecideApprovalRequest,
  principal: Principal,
  authorization: string,
): Promise<Decision> {
  // The access check bound request.tenant to the token's tenant already.
  const run = runMessage(await runs.get(principal.tenant, request.runId));
  const refuse = async (
    approvalId: string,
    code: ErrorCode,
    reason: string,
    gateStepId?: string,
  ): Promise<never> => {
    await runs
      .recordApprovalRefusal({
        tenant: principal.tenant,
        runId: run.id,
        approvalId,
        approver: principal.subject,
        code,
        reason,
        ...(gateStepId === undefined ? {} : { gateStepId }),
      })
      // The refusal stands either way; a missing audit event must not turn it into a 5xx.
      .catch(() => {});
    throw new PackrunError(code, reason);
  };
  const binding = principal.approval;
  const named = request.gateStepId || request.approvalId;
  if (binding === undefined)
    return refuse(
      named,
      "APPROVAL_TOKEN_MISMATCH",
      "an approval needs a token bound to the run, gate and plan (claims pack_run_id, pack_gate_id, pack_plan_hash)",
    );
  if (binding.runId !== run.id)
    return refuse(
      binding.gateId,
      "APPROVAL_TOKEN_MISMATCH",
      `the approval token is bound to run ${binding.runId}, not ${run.id}`,
    );
  if (binding.planHash !== run.planHash)
    return refuse(
      binding.gateId,
      "APPROVAL_STALE",
      `the approval token is for plan ${binding.planHash}, but the run has plan ${run.planHash}`,
    );
  const resolved = gateOfBinding(run, binding.gateId);
  if (resolved.kind === "none")
    return refuse(
      binding.gateId,
      "GATE_NOT_AWAITING",
      `run ${run.id} has no approval gate "${binding.gateId}"`,
    );
  if (resolved.kind === "ambiguous")
    return refuse(
      binding.gateId,
      "APPROVAL_TOKEN_MISMATCH",
      `the approval token names approval "${binding.gateId}", which ${resolved.stepIds.length} gates of run ${run.id} use (${resolved.stepIds.join(", ")}); its pack_gate_id must be the step id of the one gate it approves`,
    );
  const gate = resolved.gate;
  const names = [gate.stepId, gate.gateRef];
  if (
    (request.gateStepId !== "" && request.gateStepId !== gate.stepId) ||
    (request.approvalId !== "" && !names.includes(request.approvalId))
  )
    return refuse(
      gate.gateRef,
      "APPROVAL_TOKEN_MISMATCH",
      `the approval token is bound to gate "${gate.stepId}", not "${named}"`,
      gate.stepId,
    );
  if (gate.grants.length > 0 && !gate.grants.some((grant) => principal.groups.includes(grant)))
    return refuse(
      gate.gateRef,
      "PERMISSION_DENIED",
      `approving gate "${gate.stepId}" needs one of the groups ${gate.grants.join(", ")}`,
      gate.stepId,
    );
  return {
    tenant: principal.tenant,
    runId: run.id,
    approvalId: gate.gateRef,
    gateStepId: gate.stepId,
    planHash: binding.planHash,
    approver: principal.subject,
    approve: request.approve,
    comment: request.comment,
    tokenId: approvalTokenId(principal.tokenId, authorization),
  };
}
