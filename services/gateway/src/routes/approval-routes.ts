import { scopes } from "@packrun/auth";
import { type ErrorCode, PackrunError } from "@packrun/errors";
import type { Run } from "@packrun/proto/executor/v1";
import type { FastifyRequest } from "fastify";
import { gateJson, runStateName } from "../api-json.ts";
import { ApproveBodySchema, ApproveResponseSchema, RunIdParamsSchema } from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";
import { approvalTokenId, gateOfBinding } from "./approval-binding.ts";

/**
 * Approval decisions. The token must carry `packs.approve` and be bound, through its
 * `pack_run_id`, `pack_gate_id` and `pack_plan_hash` claims, to this run, one gate instance
 * (`pack_gate_id` is the gate's step id, or an approval id only one gate of the run uses) and
 * the plan the approver reviewed; the executor re-checks the plan hash against the run's stored
 * state inside the same transaction that records the decision and spends the token there
 * (single-use). Every refusal is written to the run's event log, so forged, stale and replayed
 * attempts are part of the evidence.
 */
export function registerApprovalRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  async function refuse(
    request: FastifyRequest,
    run: Run,
    approvalId: string,
    code: ErrorCode,
    reason: string,
    gateStepId = "",
  ): Promise<never> {
    const principal = principalOf(request);
    request.log.warn(
      { runId: run.id, approvalId, approver: principal.subject, tokenId: principal.tokenId, code },
      "approval refused",
    );
    try {
      await clients.executor.recordApprovalRefusal({
        tenant: principal.tenant,
        runId: run.id,
        approvalId,
        approver: principal.subject,
        code,
        reason,
        gateStepId,
      });
    } catch (error) {
      // The refusal stands either way; a missing audit line must not turn it into a 5xx.
      request.log.error({ err: error, runId: run.id }, "could not record the refused approval");
    }
    throw new PackrunError(code, reason);
  }

  app.post(
    "/api/runs/:id/approve",
    {
      config: { scope: scopes.approve },
      schema: {
        tags: ["runs"],
        operationId: "decideApproval",
        summary: "Approve (or reject) an approval gate with a token bound to it",
        description:
          "The bearer token must carry the packs.approve scope and the claims pack_run_id, pack_gate_id and pack_plan_hash matching this run, one gate (its step id, or an approval id only one gate uses) and the run's plan hash. Approval tokens are single-use: a second use is 409 APPROVAL_TOKEN_REUSED. The same approver counts once; the same decision with a new token answers recorded: false.",
        security: bearerSecurity(scopes.approve),
        params: RunIdParamsSchema,
        body: ApproveBodySchema,
        response: withProblems({ 200: ApproveResponseSchema }),
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body ?? {};
      // Reading the run first makes other tenants' and unknown ids answer 404, before any
      // claim is compared.
      const { run } = await clients.executor.getRun({
        tenant: principal.tenant,
        runId: request.params.id,
      });
      if (run === undefined)
        throw new PackrunError("RUN_NOT_FOUND", `run ${request.params.id} not found`);
      const binding = principal.approval;
      const approvalId = binding?.gateId ?? body.gateId ?? "";
      if (binding === undefined)
        return refuse(
          request,
          run,
          approvalId,
          "APPROVAL_TOKEN_MISMATCH",
          "an approval needs a token bound to the run, gate and plan (claims pack_run_id, pack_gate_id, pack_plan_hash)",
        );
      if (binding.runId !== run.id)
        return refuse(
          request,
          run,
          approvalId,
          "APPROVAL_TOKEN_MISMATCH",
          `the approval token is bound to run ${binding.runId}, not ${run.id}`,
        );
      if (binding.planHash !== run.planHash)
        return refuse(
          request,
          run,
          approvalId,
          "APPROVAL_STALE",
          `the approval token is for plan ${binding.planHash}, but the run has plan ${run.planHash}`,
        );
      const resolved = gateOfBinding(run, binding.gateId);
      if (resolved.kind === "none")
        return refuse(
          request,
          run,
          approvalId,
          "GATE_NOT_AWAITING",
          `run ${run.id} has no approval gate "${binding.gateId}"`,
        );
      if (resolved.kind === "ambiguous")
        return refuse(
          request,
          run,
          approvalId,
          "APPROVAL_TOKEN_MISMATCH",
          `the approval token names approval "${binding.gateId}", which ${resolved.stepIds.length} gates of run ${run.id} use (${resolved.stepIds.join(", ")}); its pack_gate_id must be the step id of the one gate it approves`,
        );
      const gate = resolved.gate;
      if (body.gateId !== undefined && body.gateId !== gate.stepId && body.gateId !== gate.gateRef)
        return refuse(
          request,
          run,
          gate.gateRef,
          "APPROVAL_TOKEN_MISMATCH",
          `the approval token is bound to gate "${gate.stepId}", not "${body.gateId}"`,
          gate.stepId,
        );
      if (gate.grants.length > 0 && !gate.grants.some((grant) => principal.groups.includes(grant)))
        return refuse(
          request,
          run,
          gate.gateRef,
          "PERMISSION_DENIED",
          `approving gate "${gate.stepId}" needs one of the groups ${gate.grants.join(", ")}`,
          gate.stepId,
        );
      const response = await clients.executor.decideApproval({
        tenant: principal.tenant,
        runId: run.id,
        approvalId: gate.gateRef,
        gateStepId: gate.stepId,
        planHash: binding.planHash,
        approver: principal.subject,
        approve: body.approve ?? true,
        comment: body.comment ?? "",
        tokenId: approvalTokenId(principal.tokenId, request.headers.authorization),
      });
      if (response.gate === undefined)
        throw new PackrunError("INTERNAL", "executor returned no gate");
      request.log.info(
        {
          runId: run.id,
          approvalId: gate.gateRef,
          gateStepId: gate.stepId,
          approver: principal.subject,
          approve: body.approve ?? true,
          recorded: response.recorded,
        },
        "approval decided",
      );
      return {
        gate: gateJson(response.gate),
        recorded: response.recorded,
        runState: runStateName(response.runState),
      };
    },
  );
}
