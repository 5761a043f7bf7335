import { decodeBase64 } from "./base64.ts";

/** One signature of a DSSE envelope. */
export interface DsseSignature {
  /** Unauthenticated hint naming the key; packrun uses the key id (SPKI SHA-256, hex). */
  keyid: string;
  /** Base64 signature over the PAE. */
  sig: string;
}

/** A DSSE envelope in its recommended JSON form. */
export interface DsseEnvelope {
  /** Base64 of the serialized body. */
  payload: string;
  payloadType: string;
  signatures: DsseSignature[];
}

/** Result of {@link parseEnvelope}: the envelope with its decoded payload, or why it is malformed. */
export type ParsedEnvelope =
  | { ok: true; envelope: DsseEnvelope; payload: Buffer }
  | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates the shape of a DSSE envelope (already JSON-parsed) and decodes its payload. */
export function parseEnvelope(value: unknown): ParsedEnvelope {
  if (!isRecord(value)) return { ok: false, reason: "envelope is not a JSON object" };
  const { payload, payloadType, signatures } = value;
  if (typeof payloadType !== "string" || payloadType === "") {
    return { ok: false, reason: "envelope.payloadType must be a non-empty string" };
  }
  if (typeof payload !== "string")
    return { ok: false, reason: "envelope.payload must be a string" };
  const body = decodeBase64(payload);
  if (body === undefined) return { ok: false, reason: "envelope.payload is not valid base64" };
  if (!Array.isArray(signatures) || signatures.length === 0) {
    return { ok: false, reason: "envelope.signatures must be a non-empty array" };
  }
  const parsed: DsseSignature[] = [];
  for (const [index, signature] of signatures.entries()) {
    if (!isRecord(signature) || typeof signature.sig !== "string") {
      return { ok: false, reason: `envelope.signatures[${index}].sig must be a string` };
    }
    const keyid = signature.keyid ?? "";
    if (typeof keyid !== "string") {
      return { ok: false, reason: `envelope.signatures[${index}].keyid must be a string` };
    }
    parsed.push({ keyid, sig: signature.sig });
  }
  return { ok: true, envelope: { payload, payloadType, signatures: parsed }, payload: body };
}

/** The envelope as stored and shipped: stable key order, two-space indent, final newline. */
export function serializeEnvelope(envelope: DsseEnvelope): string {
  const ordered = {
    payloadType: envelope.payloadType,
    payload: envelope.payload,
    signatures: envelope.signatures.map((signature) => ({
      keyid: signature.keyid,
      sig: signature.sig,
    })),
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}
