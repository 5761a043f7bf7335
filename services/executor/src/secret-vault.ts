import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { PackrunError } from "@packrun/errors";
import type { Redis } from "ioredis";

/**
 * Holds a run's secret values between submission and the steps that use them. Values never
 * reach Postgres, the plan, a log or the evidence; a vault entry lives until the run ends
 * (or its time-to-live passes).
 */
export interface SecretVault {
  put(runId: string, secrets: Readonly<Record<string, string>>): Promise<void>;
  /** The run's secrets; undefined when they are gone (expired, or the store lost its data). */
  get(runId: string): Promise<Record<string, string> | undefined>;
  delete(runId: string): Promise<void>;
}

/** Options for {@link createRedisSecretVault}. */
export interface RedisSecretVaultOptions {
  redis: Redis;
  /** 32-byte AES-256-GCM key: what is in Redis (memory, RDB/AOF files) is ciphertext. */
  key: Buffer;
  keyPrefix?: string;
  ttlSeconds?: number;
}

/** Encrypts a JSON object with AES-256-GCM; output is iv ‖ tag ‖ ciphertext, base64. */
function seal(key: Buffer, runId: string, value: Record<string, string>): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  // The run id is authenticated data: an entry copied to another run's key does not open.
  cipher.setAAD(Buffer.from(runId));
  const body = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
}

function open(key: Buffer, runId: string, sealed: string): Record<string, string> {
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

/** A vault on Redis, encrypted with a key every executor shares. */
export function createRedisSecretVault(options: RedisSecretVaultOptions): SecretVault {
  if (options.key.length !== 32)
    throw new PackrunError(
      "CONFIG_INVALID",
      "the secrets key must be 32 bytes (base64 of 32 random bytes)",
    );
  const prefix = options.keyPrefix ?? "packrun:secrets:";
  const ttl = options.ttlSeconds ?? 7 * 24 * 3600;
  return {
    async put(runId, secrets) {
      if (Object.keys(secrets).length === 0) return;
      await options.redis.set(
        `${prefix}${runId}`,
        seal(options.key, runId, { ...secrets }),
        "EX",
        ttl,
      );
    },
    async get(runId) {
      const sealed = await options.redis.get(`${prefix}${runId}`);
      return sealed === null ? undefined : open(options.key, runId, sealed);
    },
    async delete(runId) {
      await options.redis.del(`${prefix}${runId}`);
    },
  };
}

/** A vault in this process's memory, for the embedded default (one process, no Redis). */
export function createMemorySecretVault(): SecretVault {
  const entries = new Map<string, Record<string, string>>();
  return {
    async put(runId, secrets) {
      if (Object.keys(secrets).length > 0) entries.set(runId, { ...secrets });
    },
    async get(runId) {
      return entries.get(runId);
    },
    async delete(runId) {
      entries.delete(runId);
    },
  };
}
