import { once } from "node:events";
import { Redis } from "ioredis";
import { readTestEnv } from "./test-env.ts";
import { uniqueName } from "./unique-name.ts";

/** A private key space on the harness's Redis server. */
export interface TestRedis {
  /** Redis URL of the server (shared by all tests; isolate with {@link TestRedis.keyPrefix}). */
  readonly url: string;
  /** Unique key prefix, ending in `:`; hand it to the code under test. */
  readonly keyPrefix: string;
  /** A connected client that prefixes every key with {@link TestRedis.keyPrefix}. */
  readonly client: Redis;
  /** Deletes every key under the prefix (SCAN, not KEYS) and quits the client. Safe to call twice. */
  cleanup(): Promise<void>;
}

/** Escapes Redis glob metacharacters so `pattern*` matches only keys starting with `pattern`. */
function escapeGlob(pattern: string): string {
  return pattern.replace(/[*?[\]\\]/g, "\\$&");
}

/** Quits gracefully and waits until the connection is closed (`status === "end"`). */
async function quit(client: Redis): Promise<void> {
  if (client.status === "end") return;
  const ended = once(client, "end");
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
  const timer = setTimeout(() => client.disconnect(), 2000);
  await ended;
  clearTimeout(timer);
}

/**
 * Connects a client with a fresh, unique key prefix.
 * @param prefix a readable part of the key prefix
 */
export async function createTestRedis(prefix = "test"): Promise<TestRedis> {
  const url = readTestEnv().redisUrl;
  const keyPrefix = `${uniqueName(prefix, 100)}:`;
  const client = new Redis(url, { keyPrefix, lazyConnect: true, maxRetriesPerRequest: 3 });
  await client.connect();
  let cleaned = false;
  return {
    url,
    keyPrefix,
    client,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      // A separate, unprefixed connection: SCAN returns full key names, and the test's client may
      // already be closed or in subscriber mode.
      const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
      try {
        await admin.connect();
        let cursor = "0";
        do {
          const [next, keys] = await admin.scan(
            cursor,
            "MATCH",
            `${escapeGlob(keyPrefix)}*`,
            "COUNT",
            1000,
          );
          if (keys.length > 0) await admin.unlink(...keys);
          cursor = next;
        } while (cursor !== "0");
      } finally {
        admin.disconnect();
        await quit(client);
      }
    },
  };
}
