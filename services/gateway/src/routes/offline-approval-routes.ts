import { timestampDate } from "@bufbuild/protobuf/wkt";
import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { gateJson, runStateName } from "../api-json.ts";
import {
  ApprovalRequestParamsSchema,
  ExportApprovalRequestBodySchema,
  ExportApprovalRequestResponseSchema,
  ImportApprovalResponseBodySchema,
  ImportApprovalResponseResponseSchema,
} from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";

/**
 * Offline approvals for approvers who cannot reach the gateway: export a signed request for a
 * gate, carry it to them, and import the response they signed with their own key. The
 * executor checks the response against the tenant's approver keys, the request, the plan hash
 * and the expiry, and records every refusal in the run's evidence. Both need `packs.run`: the
 * caller only carries files; the authority is the approver's signature.
 */
export function registerOfflineApprovalRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  app.post(
    "/api/runs/:id/gates/:gate/approval-request",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["runs"],
        operationId: "exportApprovalRequest",
        summary: "Export a signed offline approval request for a gate awaiting approval",
        description:
          "Issues an approval request for one gate instance (its step id, or an approval id only one gate uses) for an approver who cannot reach the gateway: a DSSE envelope signed by the evidence service's key naming the run, gate, plan hash, the run's inputs summary, the quorum so far and an expiry. The approver answers it offline with `packrun approvals sign`; POST /api/approvals/import applies the answer.",
        security: bearerSecurity(scopes.run),
        params: ApprovalRequestParamsSchema,
        body: ExportApprovalRequestBodySchema,
        response: withProblems({ 200: ExportApprovalRequestResponseSchema }),
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const exported = await clients.executor.exportApprovalRequest({
        tenant: principal.tenant,
        runId: request.params.id,
        gate: request.params.gate,
        ttlSeconds: request.body?.ttlSeconds ?? 0,
        requestedBy: principal.subject,
      });
      if (exported.expiresAt === undefined)
        throw new PackrunError("INTERNAL", "executor returned no expiry");
      request.log.info(
        { runId: request.params.id, gate: request.params.gate, requestId: exported.requestId },
        "offline approval request exported",
      );
      return {
        requestId: exported.requestId,
        expiresAt: timestampDate(exported.expiresAt).toISOString(),
        envelope: JSON.parse(exported.envelopeJson),
      };
    },
  );

  app.post(
    "/api/approvals/import",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["runs"],
        operationId: "importApprovalResponse",
        summary: "Apply an offline approver's signed response",
        description:
          "The body is the response `packrun approvals sign` wrote (a DSSE envelope of type application/vnd.packrun.approval-response+json). It counts like an online approval when its signature verifies with an approver key configured for the tenant and it answers an exported, unexpired request of the run's current plan, once. Refusals (APPROVAL_SIGNATURE_INVALID, APPROVER_UNKNOWN, APPROVAL_REQUEST_UNKNOWN, APPROVAL_TOKEN_MISMATCH, APPROVAL_STALE, APPROVAL_EXPIRED, APPROVAL_TOKEN_REUSED, PERMISSION_DENIED) are recorded in the run's evidence.",
        security: bearerSecurity(scopes.run),
        body: ImportApprovalResponseBodySchema,
        response: withProblems({ 200: ImportApprovalResponseResponseSchema }),
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const imported = await clients.executor.importApprovalResponse({
        tenant: principal.tenant,
        envelopeJson: JSON.stringify(request.body),
        importedBy: principal.subject,
      });
      if (imported.gate === undefined)
        throw new PackrunError("INTERNAL", "executor returned no gate");
      request.log.info(
        { runId: imported.runId, gateStepId: imported.gate.stepId, approver: imported.approver },
        "offline approval imported",
      );
      return {
        runId: imported.runId,
        approver: imported.approver,
        gate: gateJson(imported.gate),
        recorded: imported.recorded,
        runState: runStateName(imported.runState),
      };
    },
  );
}
