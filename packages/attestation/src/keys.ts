import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { PackrunError } from "@packrun/errors";

/** Signature algorithms packrun signs and verifies with. */
export type KeyAlgorithm = "ed25519" | "ecdsa-p256";

/** A public key that verifies attestations. */
export interface VerificationKey {
  /** Lowercase hex SHA-256 of the key's SubjectPublicKeyInfo DER: stable across PEM formatting. */
  readonly keyId: string;
  readonly algorithm: KeyAlgorithm;
  readonly publicKey: KeyObject;
  /** SPKI PEM, as {@link publicKeyPem} writes it. */
  readonly publicKeyPem: string;
}

/** A private key that signs attestations, with its public half. */
export interface SigningKey extends VerificationKey {
  readonly privateKey: KeyObject;
}

/** The key id of a public key: lowercase hex SHA-256 of its SPKI DER encoding. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex");
}

/** The canonical SPKI PEM text of a public key (what bundles ship as keys/<keyid>.pem). */
export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

function algorithmOf(key: KeyObject, source: string): KeyAlgorithm {
  if (key.asymmetricKeyType === "ed25519") return "ed25519";
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") {
    return "ecdsa-p256";
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  throw new PackrunError(
    "KEY_INVALID",
    `${source}: unsupported key type ${key.asymmetricKeyType ?? "?"}${curve ? ` (${curve})` : ""}; use Ed25519 or ECDSA P-256`,
  );
}

function verificationKey(publicKey: KeyObject, source: string): VerificationKey {
  return {
    keyId: keyIdOf(publicKey),
    algorithm: algorithmOf(publicKey, source),
    publicKey,
    publicKeyPem: publicKeyPem(publicKey),
  };
}

/**
 * Loads a private signing key from PEM (PKCS#8, or SEC1 for EC).
 * @param source names the key in error messages, e.g. its file path
 * @throws PackrunError KEY_INVALID when the PEM is not a supported private key
 */
export function loadSigningKey(pem: string | Buffer, source = "signing key"): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (cause) {
    throw new PackrunError("KEY_INVALID", `${source}: not a PEM private key`, { cause });
  }
  return { ...verificationKey(createPublicKey(privateKey), source), privateKey };
}

/**
 * Loads a verification key from PEM: an SPKI public key, or a private key whose public half is
 * used.
 * @throws PackrunError KEY_INVALID when the PEM holds no supported key
 */
export function loadVerificationKey(
  pem: string | Buffer,
  source = "verification key",
): VerificationKey {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (cause) {
    throw new PackrunError("KEY_INVALID", `${source}: not a PEM public or private key`, { cause });
  }
  return verificationKey(publicKey, source);
}

/** Generates a new private key as PKCS#8 PEM (development keys, tests). */
export function generateSigningKeyPem(algorithm: KeyAlgorithm = "ed25519"): string {
  const { privateKey } =
    algorithm === "ed25519"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}
