import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import {
  generateSigningKeyPem,
  type KeyAlgorithm,
  loadSigningKey,
  loadVerificationKey,
  type SigningKey,
  type VerificationKey,
} from "@packrun/attestation";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";

/** The key that signs new attestations and every key that verifies old and new ones. */
export interface KeyRing {
  readonly signing: SigningKey;
  /** The signing key's public half first, then retired keys; no duplicates. */
  readonly verification: readonly VerificationKey[];
}

/** A key ring from a signing key and extra (e.g. retired) verification keys. */
export function createKeyRing(
  signing: SigningKey,
  verification: readonly VerificationKey[] = [],
): KeyRing {
  const seen = new Set([signing.keyId]);
  const keys: VerificationKey[] = [signing];
  for (const key of verification) {
    if (seen.has(key.keyId)) continue;
    seen.add(key.keyId);
    keys.push(key);
  }
  return { signing, verification: keys };
}

/** Where the evidence service's keys come from. */
export interface KeyFiles {
  /** PEM private key that signs (Ed25519 or ECDSA P-256). */
  signingKeyPath?: string | undefined;
  /** PEM public (or private) keys that also verify, e.g. retired signing keys. */
  verificationKeyPaths?: readonly string[] | undefined;
  /**
   * Development only: used when no signing key is configured; a new Ed25519 key is written
   * here (mode 0600) on first start and reused afterwards.
   */
  devKeyPath?: string | undefined;
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (cause) {
    throw new PackrunError(
      "CONFIG_INVALID",
      `cannot read ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`,
      { cause },
    );
  }
}

/**
 * Returns the dev key at `path`, creating it first if it does not exist. Creation is exclusive,
 * so two processes starting together end up with the same key.
 */
export async function ensureDevKey(
  path: string,
  algorithm: KeyAlgorithm = "ed25519",
): Promise<{ pem: string; created: boolean }> {
  try {
    return { pem: await readFile(path, "utf8"), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await mkdir(dirname(path), { recursive: true });
  const pem = generateSigningKeyPem(algorithm);
  try {
    await writeFile(path, pem, { flag: "wx", mode: 0o600 });
    return { pem, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return { pem: await readFile(path, "utf8"), created: false };
  }
}

/**
 * Loads the key ring from PEM files.
 * @throws PackrunError CONFIG_INVALID or KEY_INVALID naming the file
 */
export async function loadKeyRing(files: KeyFiles, logger: Logger): Promise<KeyRing> {
  let signing: SigningKey;
  if (files.signingKeyPath !== undefined && files.signingKeyPath !== "") {
    signing = loadSigningKey(
      await readPem(files.signingKeyPath, "signing key"),
      files.signingKeyPath,
    );
  } else if (files.devKeyPath !== undefined && files.devKeyPath !== "") {
    const dev = await ensureDevKey(files.devKeyPath);
    signing = loadSigningKey(dev.pem, files.devKeyPath);
    logger.warn(
      { keyId: signing.keyId, path: files.devKeyPath, created: dev.created },
      "signing with a development key; configure a managed signing key for production",
    );
  } else {
    throw new PackrunError(
      "CONFIG_INVALID",
      "no signing key: set PACKRUN_EVIDENCE_SIGNING_KEY (or PACKRUN_EVIDENCE_DEV_KEY_PATH for development)",
    );
  }
  const verification: VerificationKey[] = [];
  for (const path of files.verificationKeyPaths ?? []) {
    verification.push(loadVerificationKey(await readPem(path, "verification key"), path));
  }
  const ring = createKeyRing(signing, verification);
  logger.info(
    {
      signingKeyId: signing.keyId,
      algorithm: signing.algorithm,
      verificationKeyIds: ring.verification.map((key) => key.keyId),
    },
    "keys loaded",
  );
  return ring;
}
