import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { scopes } from "@packrun/auth";
import type { DecideApprovalRequestSchema } from "@packrun/proto/executor/v1";

/** An approval as tests used to write it: who approves which gate of which plan. */
export interface ApprovalFields {
  tenant: string;
  runId: string;
  /** The approval id, or the gate's step id: the token's pack_gate_id. */
  approvalId: string;
  planHash: string;
  approver: string;
  approve: boolean;
  comment?: string;
  /** The gate instance: then pack_gate_id is this step id. */
  gateStepId?: string;
  /** Default: a fresh jti, so each call is a new token. */
  tokenId?: string;
  groups?: string[];
}

/**
 * A DecideApproval request as the gateway sends it: the claims of a verified approval token
 * with the packs.approve scope, bound to the run, gate and plan hash given.
 */
export function boundApproval(
  fields: ApprovalFields,
): MessageInitShape<typeof DecideApprovalRequestSchema> {
  return {
    tenant: fields.tenant,
    runId: fields.runId,
    approve: fields.approve,
    comment: fields.comment ?? "",
    token: {
      subject: fields.approver,
      tenant: fields.tenant,
      scopes: [scopes.approve],
      groups: fields.groups ?? [],
      runId: fields.runId,
      gateId: fields.gateStepId || fields.approvalId,
      planHash: fields.planHash,
      tokenId: fields.tokenId ?? `jti:${randomUUID()}`,
    },
  };
}
