/**
 * The sealing both persistent vaults share: AES-256-GCM under a 32-byte key, with the run id as
 * authenticated data, so whatever sits in Redis or on disk is ciphertext bound to its run.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { PackrunError } from "@packrun/errors";

/**
 * Throws CONFIG_INVALID unless `key` is 32 bytes.
 * @throws PackrunError CONFIG_INVALID
 */
export function checkSecretsKey(key: Buffer): void {
  if (key.length !== 32)
    throw new PackrunError(
      "CONFIG_INVALID",
      "the secrets key must be 32 bytes (base64 of 32 random bytes)",
    );
}

/** Encrypts a run's secrets with AES-256-GCM; output is iv ‖ tag ‖ ciphertext, base64. */
export function seal(key: Buffer, runId: string, value: Record<string, string>): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  // The run id is authenticated data: an entry copied to another run's key does not open.
  cipher.setAAD(Buffer.from(runId));
  const body = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
}

/**
 * Decrypts what {@link seal} made for `runId`.
 * @throws PackrunError SECRETS_UNAVAILABLE when another key (or run) sealed it
 */
export function open(key: Buffer, runId: string, sealed: string): Record<string, string> {
  const raw = Buffer.from(sealed, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(runId));
  decipher.setAuthTag(raw.subarray(12, 28));
  try {
    return JSON.parse(
      Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8"),
    );
  } catch (cause) {
    throw new PackrunError(
      "SECRETS_UNAVAILABLE",
      `secrets of run ${runId} cannot be decrypted with the configured key`,
      { cause },
    );
  }
}
