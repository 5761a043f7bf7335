import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PackrunError } from "@packrun/errors";
import { checkSecretsKey, open, seal } from "./sealed-secrets.ts";
import type { SecretVault } from "./secret-vault.ts";

/** Options for {@link createFileSecretVault}. */
export interface FileSecretVaultOptions {
  /** Directory of the sealed entries (created with mode 0700). */
  dir: string;
  /** 32-byte AES-256-GCM key: what is on disk is ciphertext. */
  key: Buffer;
  /** How long an entry is kept (default 7 days, as the Redis vault). */
  ttlSeconds?: number;
}

/** One file per run: the sealed secrets and when they expire. */
interface Entry {
  expiresAt: number;
  sealed: string;
}

// Run ids are UUIDs; anything else must not become a path.
const runIdPattern = /^[0-9a-f-]{1,64}$/;

function entryPath(dir: string, runId: string): string {
  if (!runIdPattern.test(runId))
    throw new PackrunError("INTERNAL", `run id ${JSON.stringify(runId)} is not a UUID`);
  return join(dir, `${runId}.json`);
}

/**
 * A vault in a local directory, for the embedded default: one process and no Redis, but runs
 * (in its embedded database) survive a restart, so their secrets must too: a run waiting at an
 * approval gate still has them after `npm start` is restarted. Entries are sealed as in the
 * Redis vault (AES-256-GCM, the run id authenticated), written atomically with mode 0600, and
 * dropped when the run ends or their time-to-live passes.
 */
export function createFileSecretVault(options: FileSecretVaultOptions): SecretVault {
  checkSecretsKey(options.key);
  const ttlMs = (options.ttlSeconds ?? 7 * 24 * 3600) * 1000;
  const ready = mkdir(options.dir, { recursive: true, mode: 0o700 });
  return {
    async put(runId, secrets) {
      if (Object.keys(secrets).length === 0) return;
      await ready;
      const path = entryPath(options.dir, runId);
      const entry: Entry = {
        expiresAt: Date.now() + ttlMs,
        sealed: seal(options.key, runId, { ...secrets }),
      };
      // Written aside and renamed: a crash never leaves half an entry under the run's name.
      const temporary = `${path}.${randomBytes(4).toString("hex")}.tmp`;
      await writeFile(temporary, JSON.stringify(entry), { mode: 0o600 });
      await rename(temporary, path);
    },
    async get(runId) {
      const path = entryPath(options.dir, runId);
      let entry: Entry;
      try {
        entry = JSON.parse(await readFile(path, "utf8")) as Entry;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw error;
      }
      if (entry.expiresAt <= Date.now()) {
        await rm(path, { force: true });
        return undefined;
      }
      return open(options.key, runId, entry.sealed);
    },
    async delete(runId) {
      await rm(entryPath(options.dir, runId), { force: true });
    },
  };
}
