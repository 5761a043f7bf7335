import { scopes } from "@packrun/auth";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import type { RpcAccessPolicy, RpcAccessRule } from "@packrun/rpc-server";

const read: RpcAccessRule = { services: ["gateway"], scope: scopes.read };
// What goes into a run's event log and attestation: the executor alone writes it.
const executorOnly: RpcAccessRule = { services: ["executor"] };

/**
 * Who may call the evidence service: only the executor appends events, stores artifacts and
 * finalises runs; the gateway reads; the organisation's internal callers read their own
 * tenant's logs and evidence with a `packs.read` token.
 */
export const evidenceAccessPolicy: RpcAccessPolicy = {
  [EvidenceService.typeName]: {
    IngestEvents: executorOnly,
    PutArtifact: executorOnly,
    FinalizeRun: executorOnly,
    // Offline approval requests are signed with the attestation key, for the executor only.
    SignApprovalRequest: executorOnly,
    ListEvents: read,
    SubscribeEvents: read,
    ListArtifacts: read,
    GetArtifact: read,
    GetAttestation: read,
    GetBundle: read,
    ListVerificationKeys: read,
  },
};
