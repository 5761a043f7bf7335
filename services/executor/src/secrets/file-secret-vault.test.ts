import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPackrunError } from "@packrun/errors";
import { afterAll, beforeAll, test } from "vitest";
import { createFileSecretVault } from "./file-secret-vault.ts";

const runId = "6f1c2a9e-3b7d-4c1a-9e2f-0a1b2c3d4e5f";
const key = Buffer.alloc(32, 3);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-vault-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test("secrets are sealed on disk (mode 0600), read back by a new vault, and deleted", async () => {
  await createFileSecretVault({ dir, key }).put(runId, { token: "plain-value" });
  const [file] = await readdir(dir);
  assert.equal(file, `${runId}.json`);
  const path = join(dir, file);
  assert.ok(!(await readFile(path, "utf8")).includes("plain-value"));
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const reopened = createFileSecretVault({ dir, key });
  assert.deepEqual(await reopened.get(runId), { token: "plain-value" });
  await reopened.delete(runId);
  assert.equal(await reopened.get(runId), undefined);
});

test("an expired entry is gone; another key cannot open one", async () => {
  await createFileSecretVault({ dir, key, ttlSeconds: 0 }).put(runId, { token: "x" });
  assert.equal(await createFileSecretVault({ dir, key }).get(runId), undefined);
  await createFileSecretVault({ dir, key }).put(runId, { token: "x" });
  await assert.rejects(
    createFileSecretVault({ dir, key: Buffer.alloc(32, 4) }).get(runId),
    (error) => isPackrunError(error) && error.code === "SECRETS_UNAVAILABLE",
  );
});

test("a run id that is not a UUID never becomes a path", async () => {
  await assert.rejects(
    createFileSecretVault({ dir, key }).put("../escape", { token: "x" }),
    /not a UUID/,
  );
});
