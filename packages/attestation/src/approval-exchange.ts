import { createHash } from "node:crypto";
import { z } from "zod";
import { type DsseEnvelope, parseEnvelope, serializeEnvelope } from "./dsse-envelope.ts";
import type { SigningKey } from "./keys.ts";
import { sha256DigestSchema, utcTimestampSchema } from "./run-record.ts";
import { signEnvelope } from "./sign-envelope.ts";

/** DSSE payloadType of an offline approval request (signed by the evidence service's key). */
export const approvalRequestPayloadType = "application/vnd.packrun.approval-request+json";
/** DSSE payloadType of an offline approver's response (signed by the approver's own key). */
export const approvalResponsePayloadType = "application/vnd.packrun.approval-response+json";
/** `_type` of an approval request payload. */
export const approvalRequestType = "https://packrun.dev/approval-request/v1";
/** `_type` of an approval response payload. */
export const approvalResponseType = "https://packrun.dev/approval-response/v1";

/**
 * Largest request or response envelope accepted (JSON text, bytes): a response is recorded
 * verbatim in an event, whose metadata may hold 64 KiB.
 */
export const maxApprovalEnvelopeBytes = 16 * 1024;

const id = z.string().min(1).max(500);

/**
 * What an offline approver is asked to decide: the run, the gate instance, the plan hash, a
 * summary of the run's inputs, the quorum so far and until when the request is valid. The
 * nonce and the request id bind a response to exactly this request.
 */
export const approvalRequestSchema = z.strictObject({
  _type: z.literal(approvalRequestType),
  requestId: z.uuid(),
  /** Random, base64url; repeated in the response. */
  nonce: z.string().regex(/^[A-Za-z0-9_-]{22,128}$/, "expected base64url of 16+ random bytes"),
  tenant: id,
  runId: id,
  pack: z.strictObject({ name: id, version: id, digest: sha256DigestSchema }),
  planHash: sha256DigestSchema,
  gate: z.strictObject({
    /** The gate instance: its step id. */
    stepId: id,
    /** spec.approvals[].id */
    approvalId: id,
    message: z.string().max(4000),
    /** Groups an approver must hold one of; empty: anyone configured may approve. */
    grants: z.array(id).max(100),
  }),
  /** The run's (non-secret) inputs: name, digest, and the value when it is short. */
  inputs: z
    .array(
      z.strictObject({
        name: id,
        digest: sha256DigestSchema,
        value: z.json().optional(),
      }),
    )
    .max(1000),
  quorum: z.strictObject({
    required: z.int().min(1).max(1000),
    approvedBy: z.array(id).max(1000),
  }),
  issuedAt: utcTimestampSchema,
  expiresAt: utcTimestampSchema,
  /** Subject that exported the request. */
  requestedBy: z.string().max(500),
});

/** A validated approval request payload. */
export type ApprovalRequest = z.infer<typeof approvalRequestSchema>;

/** An offline approver's decision, bound to one request by its id, nonce and digest. */
export const approvalResponseSchema = z.strictObject({
  _type: z.literal(approvalResponseType),
  requestId: z.uuid(),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{22,128}$/),
  /** SHA-256 of the request's payload bytes (what its signature covers). */
  requestDigest: sha256DigestSchema,
  tenant: id,
  runId: id,
  gateStepId: id,
  approvalId: id,
  planHash: sha256DigestSchema,
  decision: z.enum(["approve", "reject"]),
  comment: z.string().max(2000),
  signedAt: utcTimestampSchema,
});

/** A validated approval response payload. */
export type ApprovalResponse = z.infer<typeof approvalResponseSchema>;

/** Outcome of reading a request or response envelope. */
export type ParsedExchange<T> =
  | { ok: true; envelope: DsseEnvelope; payload: Buffer; value: T }
  | { ok: false; reason: string };

/** SHA-256 of bytes as `sha256:<hex>`. */
function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function readEnvelope<T>(
  text: string,
  payloadType: string,
  schema: z.ZodType<T>,
  what: string,
): ParsedExchange<T> {
  if (Buffer.byteLength(text) > maxApprovalEnvelopeBytes)
    return { ok: false, reason: `${what} is larger than ${maxApprovalEnvelopeBytes} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: `${what} is not JSON` };
  }
  const parsed = parseEnvelope(json);
  if (!parsed.ok) return { ok: false, reason: `${what} is not a DSSE envelope: ${parsed.reason}` };
  if (parsed.envelope.payloadType !== payloadType)
    return {
      ok: false,
      reason: `${what} has payloadType ${parsed.envelope.payloadType}, expected ${payloadType}`,
    };
  let payload: unknown;
  try {
    payload = JSON.parse(parsed.payload.toString("utf8"));
  } catch {
    return { ok: false, reason: `${what}'s payload is not JSON` };
  }
  const result = schema.safeParse(payload);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
    );
    return { ok: false, reason: `${what}'s payload is invalid: ${problems.join("; ")}` };
  }
  return { ok: true, envelope: parsed.envelope, payload: parsed.payload, value: result.data };
}

/** Parses (without verifying its signature) an approval request envelope's JSON text. */
export function parseApprovalRequest(text: string): ParsedExchange<ApprovalRequest> {
  return readEnvelope(
    text,
    approvalRequestPayloadType,
    approvalRequestSchema,
    "the approval request",
  );
}

/** Parses (without verifying its signature) an approval response envelope's JSON text. */
export function parseApprovalResponse(text: string): ParsedExchange<ApprovalResponse> {
  return readEnvelope(
    text,
    approvalResponsePayloadType,
    approvalResponseSchema,
    "the approval response",
  );
}

/** The request digest a response must carry: SHA-256 of the request's payload bytes. */
export function approvalRequestDigest(requestPayload: Uint8Array): string {
  return sha256(requestPayload);
}

/** Serialises a request payload (the bytes the evidence service signs). */
export function serializeApprovalRequest(request: ApprovalRequest): Buffer {
  return Buffer.from(JSON.stringify(approvalRequestSchema.parse(request)));
}

/**
 * The approver's signed decision on `request` (its verified envelope's payload bytes and
 * value), as `packrun approvals sign` writes it: a DSSE envelope signed with `key`.
 */
export function signApprovalResponse(
  request: { payload: Uint8Array; value: ApprovalRequest },
  decision: { approve: boolean; comment: string; signedAt?: Date },
  key: SigningKey,
): string {
  const response: ApprovalResponse = approvalResponseSchema.parse({
    _type: approvalResponseType,
    requestId: request.value.requestId,
    nonce: request.value.nonce,
    requestDigest: approvalRequestDigest(request.payload),
    tenant: request.value.tenant,
    runId: request.value.runId,
    gateStepId: request.value.gate.stepId,
    approvalId: request.value.gate.approvalId,
    planHash: request.value.planHash,
    decision: decision.approve ? "approve" : "reject",
    comment: decision.comment,
    signedAt: (decision.signedAt ?? new Date()).toISOString(),
  });
  const envelope = signEnvelope(
    approvalResponsePayloadType,
    Buffer.from(JSON.stringify(response)),
    key,
  );
  return serializeEnvelope(envelope);
}
