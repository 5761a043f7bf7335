import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { gateJson, runStateName } from "../api-json.ts";
import { ApproveBodySchema, ApproveResponseSchema, RunIdParamsSchema } from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";
import { approvalTokenId } from "./approval-binding.ts";

/**
 * Approval decisions. The gateway authenticates the token (signature, issuer, audience, expiry,
 * the `packs.approve` scope) and passes its claims on; the executor decides: the token must be
 * bound, through its `pack_run_id`, `pack_gate_id` and `pack_plan_hash` claims, to this run, one
 * gate instance (`pack_gate_id` is the gate's step id, or an approval id only one gate of the
 * run uses) and the run's plan, hold one of the gate's grants, and be unspent (single use). The
 * executor records every refusal in the run's event log, so forged, stale and replayed attempts
 * are part of the evidence.
 */
export function registerApprovalRoutes(app: GatewayApp, { clients }: GatewayContext): void {
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
      const binding = principal.approval;
      const response = await clients.executor.decideApproval({
        tenant: principal.tenant,
        runId: request.params.id,
        approvalId: body.gateId ?? "",
        approve: body.approve ?? true,
        comment: body.comment ?? "",
        token: {
          subject: principal.subject,
          tenant: principal.tenant,
          scopes: [...principal.scopes],
          groups: [...principal.groups],
          runId: binding?.runId ?? "",
          gateId: binding?.gateId ?? "",
          planHash: binding?.planHash ?? "",
          tokenId: approvalTokenId(principal.tokenId, request.headers.authorization),
        },
      });
      if (response.gate === undefined)
        throw new PackrunError("INTERNAL", "executor returned no gate");
      request.log.info(
        {
          runId: request.params.id,
          approvalId: response.gate.gateRef,
          gateStepId: response.gate.stepId,
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
