import {
  approvalRequestPayloadType,
  approvalRequestSchema,
  serializeApprovalRequest,
  serializeEnvelope,
  signEnvelope,
} from "@packrun/attestation";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { KeyRing } from "./key-ring.ts";

/**
 * Signs an offline approval request the executor built, with the key ring's current key, so
 * the approver checks it with the same keys that verify attestations and bundles. The payload
 * must be a valid request naming `tenant` and `runId` (the executor, which owns runs, checked
 * the run; its events may not have been shipped here yet).
 * @throws PackrunError REQUEST_INVALID for a malformed payload or another run's
 */
export async function signApprovalRequest(
  deps: { keys: KeyRing; logger: Logger },
  request: { tenant: string; runId: string; payloadJson: string },
): Promise<{ envelopeJson: string; keyId: string }> {
  let json: unknown;
  try {
    json = JSON.parse(request.payloadJson);
  } catch {
    throw new PackrunError("REQUEST_INVALID", "payload_json is not JSON");
  }
  const parsed = approvalRequestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `payload_json.${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
    );
    throw new PackrunError("REQUEST_INVALID", `invalid approval request: ${problems.join("; ")}`);
  }
  const payload = parsed.data;
  if (payload.tenant !== request.tenant || payload.runId !== request.runId)
    throw new PackrunError(
      "REQUEST_INVALID",
      `payload_json is a request for run ${payload.runId} of tenant ${payload.tenant}, not run ${request.runId} of tenant ${request.tenant}`,
    );
  const envelope = signEnvelope(
    approvalRequestPayloadType,
    serializeApprovalRequest(payload),
    deps.keys.signing,
  );
  deps.logger.info(
    {
      runId: payload.runId,
      requestId: payload.requestId,
      gateStepId: payload.gate.stepId,
      keyId: deps.keys.signing.keyId,
    },
    "approval request signed",
  );
  return { envelopeJson: serializeEnvelope(envelope), keyId: deps.keys.signing.keyId };
}
