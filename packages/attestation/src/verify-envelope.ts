import { verify } from "node:crypto";
import { decodeBase64 } from "./base64.ts";
import { parseEnvelope } from "./dsse-envelope.ts";
import type { VerificationKey } from "./keys.ts";
import { preAuthEncoding } from "./pae.ts";

/** Outcome of {@link verifyEnvelope}. */
export type EnvelopeVerification =
  | { ok: true; keyId: string; payloadType: string; payload: Buffer }
  | { ok: false; reason: string };

/** Verifies one signature over `message` with `key`; ECDSA accepts DER and raw r||s. */
export function verifyBytes(key: VerificationKey, message: Uint8Array, signature: Buffer): boolean {
  try {
    if (key.algorithm === "ed25519") return verify(null, message, key.publicKey, signature);
    if (verify("sha256", message, { key: key.publicKey, dsaEncoding: "der" }, signature)) {
      return true;
    }
    // The DSSE spec's own test vector carries a raw 64-byte r||s signature.
    return (
      signature.length === 64 &&
      verify("sha256", message, { key: key.publicKey, dsaEncoding: "ieee-p1363" }, signature)
    );
  } catch {
    return false;
  }
}

/**
 * Verifies a DSSE envelope (the parsed JSON) against trusted keys: accepted when any signature
 * verifies over PAE(payloadType, payload) with any of `keys`. The signature's `keyid` only picks
 * which key to try first: it is not authenticated.
 */
export function verifyEnvelope(
  value: unknown,
  keys: readonly VerificationKey[],
): EnvelopeVerification {
  const parsed = parseEnvelope(value);
  if (!parsed.ok) return parsed;
  if (keys.length === 0) return { ok: false, reason: "no verification key given" };
  const { envelope, payload } = parsed;
  const message = preAuthEncoding(envelope.payloadType, payload);
  for (const signature of envelope.signatures) {
    const bytes = decodeBase64(signature.sig);
    if (bytes === undefined) continue;
    const hinted = keys.filter((key) => key.keyId === signature.keyid);
    const others = keys.filter((key) => key.keyId !== signature.keyid);
    for (const key of [...hinted, ...others]) {
      if (verifyBytes(key, message, bytes)) {
        return { ok: true, keyId: key.keyId, payloadType: envelope.payloadType, payload };
      }
    }
  }
  const hints = envelope.signatures.map((signature) => signature.keyid || "(none)").join(", ");
  return {
    ok: false,
    reason: `no signature verifies with the ${keys.length} trusted key(s) (signature key ids: ${hints})`,
  };
}
