import assert from "node:assert/strict";
import { mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKeyPem, loadSigningKey } from "@packrun/attestation";
import { PackrunError } from "@packrun/errors";
import { test } from "vitest";
import { ensureDevKey, loadKeyRing } from "./key-ring.ts";
import { testLogger } from "./test-helpers.ts";

test("the dev key is generated once (mode 0600) and reused; concurrent starts agree", async () => {
  const dir = await mkdtemp(join(tmpdir(), "packrun-keys-"));
  const path = join(dir, "nested", "dev-signing-key.pem");
  const [a, b] = await Promise.all([ensureDevKey(path), ensureDevKey(path)]);
  assert.equal(a.pem, b.pem);
  assert.equal([a.created, b.created].filter(Boolean).length, 1);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const again = await loadKeyRing({ devKeyPath: path }, testLogger);
  assert.equal(again.signing.keyId, loadSigningKey(await readFile(path, "utf8")).keyId);
  assert.equal(again.signing.algorithm, "ed25519");
});

test("configured keys: signing first and active, verification keys deduplicated, bad files named", async () => {
  const dir = await mkdtemp(join(tmpdir(), "packrun-keys-"));
  const signingPath = join(dir, "signing.pem");
  const retiredPath = join(dir, "retired.pem");
  await writeFile(signingPath, generateSigningKeyPem("ecdsa-p256"));
  const retired = loadSigningKey(generateSigningKeyPem("ed25519"));
  await writeFile(retiredPath, retired.publicKeyPem);
  const ring = await loadKeyRing(
    {
      signingKeyPath: signingPath,
      verificationKeyPaths: [retiredPath, signingPath, retiredPath],
      devKeyPath: join(dir, "unused.pem"),
    },
    testLogger,
  );
  assert.equal(ring.signing.algorithm, "ecdsa-p256");
  assert.deepEqual(
    ring.verification.map((key) => key.keyId),
    [ring.signing.keyId, retired.keyId],
  );
  await assert.rejects(
    loadKeyRing({ signingKeyPath: join(dir, "missing.pem") }, testLogger),
    (error: unknown) => {
      assert.ok(error instanceof PackrunError);
      assert.equal(error.code, "CONFIG_INVALID");
      assert.match(error.message, /cannot read signing key .*missing\.pem: ENOENT/);
      return true;
    },
  );
  await writeFile(join(dir, "garbage.pem"), "garbage");
  await assert.rejects(loadKeyRing({ signingKeyPath: join(dir, "garbage.pem") }, testLogger), {
    code: "KEY_INVALID",
  });
  await assert.rejects(loadKeyRing({}, testLogger), /no signing key/);
});
