/**
 * `packrun approvals sign` works with no gateway at all: it checks the request's signature with
 * the trusted packrun key, refuses expired or malformed requests, and writes a response signed
 * with the approver's key that binds the request's id, nonce and digest.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  type ApprovalRequest,
  approvalRequestDigest,
  approvalRequestPayloadType,
  approvalRequestType,
  generateSigningKeyPem,
  loadSigningKey,
  loadVerificationKey,
  parseApprovalResponse,
  serializeApprovalRequest,
  serializeEnvelope,
  signEnvelope,
  verifyEnvelope,
} from "@packrun/attestation";
import { test } from "vitest";
import { runCliInProcess as runCli, tempDirWith } from "./testing/run-cli.ts";

const packrunKey = loadSigningKey(generateSigningKeyPem("ed25519"));
const approverPem = generateSigningKeyPem("ecdsa-p256");
const approver = loadSigningKey(approverPem);

function requestEnvelope(expiresAt: Date): { text: string; payload: Buffer } {
  const request: ApprovalRequest = {
    _type: approvalRequestType,
    requestId: randomUUID(),
    nonce: "q".repeat(43),
    tenant: "acme",
    runId: randomUUID(),
    pack: { name: "demo", version: "1.0.0", digest: `sha256:${"ab".repeat(32)}` },
    planHash: `sha256:${"cd".repeat(32)}`,
    gate: { stepId: "release-gate", approvalId: "release", message: "ship it", grants: ["ops"] },
    inputs: [{ name: "target", digest: `sha256:${"ef".repeat(32)}`, value: "prod-eu" }],
    quorum: { required: 2, approvedBy: ["bob"] },
    issuedAt: new Date().toISOString(),
    expiresAt: expiresAt.toISOString(),
    requestedBy: "operator",
  };
  const payload = serializeApprovalRequest(request);
  return {
    text: serializeEnvelope(signEnvelope(approvalRequestPayloadType, payload, packrunKey)),
    payload,
  };
}

test("sign: verified request, approver's P-256 key, response bound to the request; refusals otherwise", async () => {
  const valid = requestEnvelope(new Date(Date.now() + 3_600_000));
  const expired = requestEnvelope(new Date(Date.now() - 1000));
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    type: "pkcs8",
    format: "pem",
  });
  await using dir = await tempDirWith({
    "request.json": valid.text,
    "expired.json": expired.text,
    "junk.json":
      '{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": [{"keyid": "", "sig": ""}]}',
    "approver.key.pem": approverPem,
    "rsa.key.pem": String(rsa),
    "packrun.pub.pem": packrunKey.publicKeyPem,
    "other.pub.pem": loadSigningKey(generateSigningKeyPem("ed25519")).publicKeyPem,
  });
  // No gateway anywhere: an unroutable URL and no token.
  const env = {
    PACKRUN_HOME: dir.dir,
    PACKRUN_URL: "http://127.0.0.1:9",
    PACKRUN_TOKEN: "",
    PACKRUN_TRUSTED_KEYS: "",
  };
  const sign = (...args: string[]) => runCli(["approvals", "sign", ...args], { cwd: dir.dir, env });

  const signed = await sign(
    "request.json",
    "--key",
    "approver.key.pem",
    "--trust",
    "packrun.pub.pem",
    "--reject",
    "-c",
    "not yet",
    "-o",
    "response.json",
  );
  assert.equal(signed.code, 0, signed.stderr);
  assert.match(signed.stderr, /request signature: verified, packrun key [0-9a-f]{64}/);
  assert.match(signed.stderr, /quorum {3}1\/2 approvals \(bob\)/);
  assert.match(signed.stderr, /target = "prod-eu"/);
  assert.match(signed.stderr, /rejected with approver key/);
  const text = await readFile(path.join(dir.dir, "response.json"), "utf8");
  const response = parseApprovalResponse(text);
  assert.ok(response.ok, response.ok ? "" : response.reason);
  const verified = verifyEnvelope(response.envelope, [loadVerificationKey(approver.publicKeyPem)]);
  assert.ok(verified.ok);
  assert.equal(verified.keyId, approver.keyId);
  assert.equal(response.value.decision, "reject");
  assert.equal(response.value.comment, "not yet");
  assert.equal(response.value.requestDigest, approvalRequestDigest(valid.payload));
  assert.equal(response.value.gateStepId, "release-gate");

  const noTrust = await sign("request.json", "--key", "approver.key.pem", "-o", "x.json");
  assert.equal(noTrust.code, 6, noTrust.stderr);
  const wrongTrust = await sign(
    "request.json",
    "--key",
    "approver.key.pem",
    "--trust",
    "other.pub.pem",
    "-o",
    "x.json",
  );
  assert.equal(wrongTrust.code, 7, wrongTrust.stderr);
  assert.match(wrongTrust.stderr, /not signed by a trusted packrun key/);
  const unverified = await sign(
    "request.json",
    "--key",
    "approver.key.pem",
    "--allow-unverified",
    "-o",
    "y.json",
  );
  assert.equal(unverified.code, 0, unverified.stderr);
  assert.match(unverified.stderr, /NOT VERIFIED/);
  const late = await sign(
    "expired.json",
    "--key",
    "approver.key.pem",
    "--trust",
    "packrun.pub.pem",
    "-o",
    "x.json",
  );
  assert.equal(late.code, 2, late.stderr);
  assert.match(late.stderr, /expired at/);
  const junk = await sign("junk.json", "--key", "approver.key.pem", "--trust", "packrun.pub.pem");
  assert.equal(junk.code, 2, junk.stderr);
  assert.match(
    junk.stderr,
    /payloadType application\/vnd\.in-toto\+json, expected application\/vnd\.packrun\.approval-request\+json/,
  );
  const rsaKey = await sign(
    "request.json",
    "--key",
    "rsa.key.pem",
    "--trust",
    "packrun.pub.pem",
    "-o",
    "x.json",
  );
  assert.equal(rsaKey.code, 2, rsaKey.stderr);
  assert.match(rsaKey.stderr, /Ed25519 or ECDSA P-256/);
  const missing = await sign(
    "none.json",
    "--key",
    "approver.key.pem",
    "--trust",
    "packrun.pub.pem",
  );
  assert.equal(missing.code, 2, missing.stderr);
});
