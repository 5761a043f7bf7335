import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { PackrunError } from "@packrun/errors";
import { test } from "vitest";
import { generateSigningKeyPem, loadSigningKey, loadVerificationKey } from "./keys.ts";
import { signEnvelope } from "./sign-envelope.ts";
import { verifyEnvelope } from "./verify-envelope.ts";

for (const algorithm of ["ed25519", "ecdsa-p256"] as const) {
  test(`${algorithm}: sign and verify round trip; any changed byte fails`, () => {
    const key = loadSigningKey(generateSigningKeyPem(algorithm));
    assert.equal(key.algorithm, algorithm);
    assert.match(key.keyId, /^[0-9a-f]{64}$/);
    const envelope = signEnvelope("application/vnd.in-toto+json", Buffer.from('{"a":1}'), key);
    assert.equal(envelope.signatures[0]?.keyid, key.keyId);
    const verified = verifyEnvelope(envelope, [loadVerificationKey(key.publicKeyPem)]);
    assert.ok(verified.ok);
    assert.equal(verified.keyId, key.keyId);
    const otherType = { ...envelope, payloadType: "application/json" };
    assert.equal(verifyEnvelope(otherType, [key]).ok, false);
    const otherBody = { ...envelope, payload: Buffer.from('{"a":2}').toString("base64") };
    assert.equal(verifyEnvelope(otherBody, [key]).ok, false);
  });

  test(`${algorithm}: the key id is the same from the private key, the public key and other PEM forms`, () => {
    const pem = generateSigningKeyPem(algorithm);
    const signing = loadSigningKey(pem);
    assert.equal(loadVerificationKey(pem).keyId, signing.keyId);
    assert.equal(loadVerificationKey(signing.publicKeyPem).keyId, signing.keyId);
    if (algorithm === "ecdsa-p256") {
      const sec1 = createPrivateKey(pem).export({ type: "sec1", format: "pem" });
      assert.equal(loadSigningKey(sec1).keyId, signing.keyId);
    }
  });
}

test("verification tries every trusted key: rotation keeps old signatures verifiable", () => {
  const old = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
  const current = loadSigningKey(generateSigningKeyPem("ed25519"));
  const before = signEnvelope("t", Buffer.from("before"), old);
  const after = signEnvelope("t", Buffer.from("after"), current);
  const ring = [current, old].map((key) => loadVerificationKey(key.publicKeyPem));
  assert.equal(verifyEnvelope(before, ring).ok && verifyEnvelope(after, ring).ok, true);
  const onlyCurrent = verifyEnvelope(before, [current]);
  assert.equal(onlyCurrent.ok, false);
  assert.match(onlyCurrent.ok ? "" : onlyCurrent.reason, new RegExp(old.keyId));
  // keyid is only a hint: a wrong hint still verifies with the right trusted key.
  const misnamed = {
    ...before,
    signatures: [{ keyid: "nope", sig: before.signatures[0]?.sig ?? "" }],
  };
  assert.ok(verifyEnvelope(misnamed, ring).ok);
});

test("unsupported and malformed keys are refused with KEY_INVALID", () => {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    type: "pkcs8",
    format: "pem",
  });
  assert.throws(
    () => loadSigningKey(rsa, "/etc/keys/rsa.pem"),
    (error: unknown) => {
      assert.ok(error instanceof PackrunError);
      assert.equal(error.code, "KEY_INVALID");
      assert.match(error.message, /^\/etc\/keys\/rsa\.pem: unsupported key type rsa/);
      return true;
    },
  );
  const p384 = generateKeyPairSync("ec", { namedCurve: "secp384r1" }).publicKey.export({
    type: "spki",
    format: "pem",
  });
  assert.throws(() => loadVerificationKey(p384), /secp384r1/);
  assert.throws(() => loadSigningKey("not a key"), { code: "KEY_INVALID" });
});

test("malformed envelopes are reported, not thrown", () => {
  const key = loadSigningKey(generateSigningKeyPem());
  assert.deepEqual(verifyEnvelope("x", [key]), {
    ok: false,
    reason: "envelope is not a JSON object",
  });
  const bad = verifyEnvelope({ payloadType: "t", payload: "!!", signatures: [{ sig: "" }] }, [key]);
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? "" : bad.reason, /base64/);
  const none = verifyEnvelope({ payloadType: "t", payload: "", signatures: [] }, [key]);
  assert.equal(none.ok, false);
});
