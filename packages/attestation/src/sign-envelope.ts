import { sign } from "node:crypto";
import type { DsseEnvelope } from "./dsse-envelope.ts";
import type { SigningKey } from "./keys.ts";
import { preAuthEncoding } from "./pae.ts";

/**
 * Signs raw bytes as the algorithm expects: Ed25519 over the message itself, ECDSA P-256 over
 * its SHA-256 with a DER-encoded signature (the encoding Sigstore and OpenSSL verify).
 */
export function signBytes(key: SigningKey, message: Uint8Array): Buffer {
  return key.algorithm === "ed25519"
    ? sign(null, message, key.privateKey)
    : sign("sha256", message, { key: key.privateKey, dsaEncoding: "der" });
}

/** Wraps `payload` in a DSSE envelope signed over its PAE, with the key id as `keyid`. */
export function signEnvelope(
  payloadType: string,
  payload: Uint8Array,
  key: SigningKey,
): DsseEnvelope {
  const signature = signBytes(key, preAuthEncoding(payloadType, payload));
  return {
    payloadType,
    payload: Buffer.from(payload).toString("base64"),
    signatures: [{ keyid: key.keyId, sig: signature.toString("base64") }],
  };
}
