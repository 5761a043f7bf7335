import { ConnectError, createClient } from "@connectrpc/connect";
import { PackrunError } from "@packrun/errors";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { errorCodeHeader, type ServiceTls, serviceTransport } from "@packrun/rpc-server";
import { rpcClientTracing } from "@packrun/telemetry";
import type { ApprovalRequestSigner } from "../approvals/offline-approvals.ts";

/**
 * An {@link ApprovalRequestSigner} calling the evidence service's SignApprovalRequest: requests
 * are signed with the key that signs attestations, so approvers trust one key set. With `tls`
 * the call carries the executor's certificate (the evidence service allows only the executor).
 * `close` ends its HTTP/2 session.
 */
export function evidenceApprovalRequestSigner(
  evidenceUrl: string,
  tls?: ServiceTls,
): ApprovalRequestSigner & { close(): void } {
  const { transport, sessions } = serviceTransport(evidenceUrl, tls, {
    interceptors: [rpcClientTracing()],
  });
  const client = createClient(EvidenceService, transport);
  const sign: ApprovalRequestSigner = async (request) => {
    try {
      const response = await client.signApprovalRequest(request, {
        timeoutMs: 10_000,
      });
      return { envelopeJson: response.envelopeJson };
    } catch (error) {
      const connectError = ConnectError.from(error);
      const code = connectError.metadata.get(errorCodeHeader);
      // The evidence service refusing our own payload is our defect; anything else is an outage.
      throw new PackrunError(
        code === "REQUEST_INVALID" ? "INTERNAL" : "UNAVAILABLE",
        `the evidence service could not sign the approval request: ${connectError.rawMessage}`,
        { cause: error },
      );
    }
  };
  return Object.assign(sign, { close: () => sessions.abort() });
}
