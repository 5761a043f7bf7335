import { createPublicKey, type webcrypto } from "node:crypto";
import { PackrunError } from "@packrun/errors";
import { type KeyAlgorithm, loadVerificationKey, type VerificationKey } from "./keys.ts";

/** A public signing key as a JWK (RFC 7517), with packrun's key id as `kid`. */
export interface SigningJwk {
  /** `OKP` for Ed25519 (RFC 8037), `EC` for P-256. */
  kty: string;
  crv: string;
  x: string;
  /** P-256 only. */
  y?: string;
  kid: string;
  use: "sig";
  /** JWA name: `EdDSA` (RFC 8037) for Ed25519, `ES256` for ECDSA P-256. */
  alg: "EdDSA" | "ES256";
}

const jwaOf: Record<KeyAlgorithm, SigningJwk["alg"]> = { ed25519: "EdDSA", "ecdsa-p256": "ES256" };

/** The public JWK of a verification key: `kty`/`crv`/`x`(/`y`), `kid`, `use: "sig"` and `alg`. */
export function verificationKeyJwk(key: VerificationKey): SigningJwk {
  const { kty, crv, x, y } = key.publicKey.export({ format: "jwk" });
  return {
    kty: kty as string,
    crv: crv as string,
    x: x as string,
    ...(y === undefined ? {} : { y }),
    kid: key.keyId,
    use: "sig",
    alg: jwaOf[key.algorithm],
  };
}

/**
 * The PEM form of a key set: each key's SPKI PEM after a comment line naming its key id,
 * algorithm and whether it signs new bundles (tools such as OpenSSL skip text outside the
 * `-----BEGIN/END-----` lines).
 */
export function keySetPem(keys: readonly (VerificationKey & { active?: boolean })[]): string {
  return keys
    .map(
      (key) =>
        `# key id ${key.keyId} (${key.algorithm}${key.active === undefined ? "" : key.active ? ", active" : ", retired"})\n${key.publicKeyPem}`,
    )
    .join("");
}

const pemBlock = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/**
 * Loads every public key in a trusted-key file: a JWK Set (`{"keys": [...]}`, as served at
 * `/.well-known/packrun/signing-keys`), a single JWK, or one or more PEM blocks (the `.pem` form).
 * @param source names the file in error messages
 * @throws PackrunError KEY_INVALID naming the file (and the key) that cannot be used
 */
export function loadVerificationKeys(text: string | Buffer, source: string): VerificationKey[] {
  const content = text.toString();
  if (content.trimStart().startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(content);
    } catch (cause) {
      throw new PackrunError("KEY_INVALID", `${source}: not valid JSON (expected a JWK Set)`, {
        cause,
      });
    }
    const record = parsed as { keys?: unknown };
    const jwks = Array.isArray(record.keys) ? record.keys : [parsed];
    if (jwks.length === 0) throw new PackrunError("KEY_INVALID", `${source}: the JWK Set is empty`);
    return jwks.map((jwk, index) => {
      const where = `${source}: keys[${index}]`;
      let pem: string;
      try {
        pem = createPublicKey({ key: jwk as webcrypto.JsonWebKey, format: "jwk" })
          .export({ type: "spki", format: "pem" })
          .toString();
      } catch (cause) {
        throw new PackrunError("KEY_INVALID", `${where}: not a public JWK`, { cause });
      }
      const key = loadVerificationKey(pem, where);
      const kid = (jwk as { kid?: unknown }).kid;
      if (kid !== undefined && kid !== key.keyId) {
        throw new PackrunError(
          "KEY_INVALID",
          `${where}: kid ${String(kid)} is not the key's id ${key.keyId}`,
        );
      }
      return key;
    });
  }
  const blocks = content.match(pemBlock) ?? [];
  if (blocks.length === 0) {
    throw new PackrunError("KEY_INVALID", `${source}: no PEM key and not a JWK Set`);
  }
  return blocks.map((block, index) =>
    loadVerificationKey(block, blocks.length === 1 ? source : `${source}: key ${index + 1}`),
  );
}
