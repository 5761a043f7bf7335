import type { Redis } from "ioredis";
import { checkSecretsKey, open, seal } from "./sealed-secrets.ts";

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

/** A vault on Redis, encrypted with a key every executor shares. */
export function createRedisSecretVault(options: RedisSecretVaultOptions): SecretVault {
  checkSecretsKey(options.key);
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
