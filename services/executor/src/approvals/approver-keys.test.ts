import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKeyPem, loadSigningKey } from "@packrun/attestation";
import { afterAll, beforeAll, describe, test } from "vitest";
import { currentApproverKeys, loadApproverKeys, parseApproverKeys } from "./approver-keys.ts";

const ed25519 = loadSigningKey(generateSigningKeyPem("ed25519"));
const p256 = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-approver-keys-"));
  await writeFile(join(dir, "alice.pub.pem"), ed25519.publicKeyPem);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function parse(value: unknown) {
  return parseApproverKeys(JSON.stringify(value), dir, "keys.json");
}

describe("the approver key file", () => {
  test("maps each tenant's keys (inline or from a file) to an approver and groups", async () => {
    const keys = await parse({
      tenants: {
        acme: [
          { approver: "alice", groups: ["release"], publicKeyFile: "alice.pub.pem" },
          { approver: "bob", publicKey: p256.publicKeyPem, keyId: p256.keyId },
        ],
      },
    });
    const acme = keys.get("acme") ?? [];
    assert.deepEqual(
      acme.map((entry) => [entry.approver, entry.groups, entry.key.keyId, entry.key.algorithm]),
      [
        ["alice", ["release"], ed25519.keyId, "ed25519"],
        ["bob", [], p256.keyId, "ecdsa-p256"],
      ],
    );
    assert.equal(keys.get("other"), undefined);
  });

  test("refuses, naming the entry: a wrong keyId, one key for two approvers, no key, a missing key file, a bad key, an unknown field", async () => {
    const refused = async (value: unknown, message: RegExp) =>
      assert.rejects(parse(value), (error: Error & { code?: string }) => {
        assert.equal(error.code, "CONFIG_INVALID");
        assert.match(error.message, message);
        return true;
      });
    await refused(
      {
        tenants: {
          acme: [{ approver: "bob", publicKey: p256.publicKeyPem, keyId: "0".repeat(64) }],
        },
      },
      /tenants\.acme\[0\] \(bob\): the key's id is [0-9a-f]{64}, not the configured keyId/,
    );
    await refused(
      {
        tenants: {
          acme: [
            { approver: "alice", publicKey: ed25519.publicKeyPem },
            { approver: "mallory", publicKeyFile: "alice.pub.pem" },
          ],
        },
      },
      /tenants\.acme\[1\] \(mallory\): key [0-9a-f]{64} is already configured for alice/,
    );
    await refused(
      { tenants: { acme: [{ approver: "alice" }] } },
      /exactly one of publicKey and publicKeyFile/,
    );
    await refused(
      { tenants: { acme: [{ approver: "alice", publicKeyFile: "missing.pem" }] } },
      /cannot read publicKeyFile .*missing\.pem: ENOENT/,
    );
    await refused(
      { tenants: { acme: [{ approver: "alice", publicKey: "not a key" }] } },
      /tenants\.acme\[0\] \(alice\)/,
    );
    await refused(
      { tenants: { acme: [{ approver: "alice", publicKey: "x", extra: 1 }] } },
      /extra/,
    );
    await assert.rejects(parseApproverKeys("{", dir, "keys.json"), /keys\.json is not JSON/);
  });

  test("a missing file fails unless optional (the embedded default); no source is no keys", async () => {
    const missing = join(dir, "none.json");
    await assert.rejects(loadApproverKeys(missing), /cannot read the approver key file .*: ENOENT/);
    await assert.rejects(currentApproverKeys({ file: missing }), /ENOENT/);
    assert.equal((await currentApproverKeys({ file: missing, optional: true })).size, 0);
    assert.equal((await currentApproverKeys(undefined)).size, 0);
    // Optional covers a missing file only, never a broken one.
    const broken = join(dir, "broken.json");
    await writeFile(broken, "{");
    await assert.rejects(currentApproverKeys({ file: broken, optional: true }), /not JSON/);
  });
});
