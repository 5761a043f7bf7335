import assert from "node:assert/strict";
import { describe, test } from "vitest";
import { keySetPem, loadVerificationKeys, verificationKeyJwk } from "./key-sets.ts";
import { generateSigningKeyPem, loadSigningKey } from "./keys.ts";

const ed = loadSigningKey(generateSigningKeyPem("ed25519"));
const ec = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
const ids = (keys: { keyId: string }[]) => keys.map((key) => key.keyId);

describe("trusted-key files", () => {
  test("a JWK Set, a single JWK and several PEM blocks load every key", () => {
    const jwks = JSON.stringify({ keys: [verificationKeyJwk(ed), verificationKeyJwk(ec)] });
    assert.deepEqual(ids(loadVerificationKeys(jwks, "keys.json")), [ed.keyId, ec.keyId]);
    const single = JSON.stringify(verificationKeyJwk(ec));
    assert.deepEqual(ids(loadVerificationKeys(single, "key.json")), [ec.keyId]);
    const pem = keySetPem([
      { ...ed, active: true },
      { ...ec, active: false },
    ]);
    assert.deepEqual(ids(loadVerificationKeys(pem, "keys.pem")), [ed.keyId, ec.keyId]);
  });

  test("no private part is published", () => {
    for (const key of [ed, ec]) assert.equal(Object.hasOwn(verificationKeyJwk(key), "d"), false);
  });

  test("errors name the file and the key at fault", () => {
    const wrongKid = JSON.stringify({ keys: [{ ...verificationKeyJwk(ed), kid: ec.keyId }] });
    assert.throws(
      () => loadVerificationKeys(wrongKid, "keys.json"),
      /keys\.json: keys\[0\]: kid [0-9a-f]{64} is not the key's id/,
    );
    assert.throws(
      () => loadVerificationKeys('{"keys": []}', "empty.json"),
      /empty\.json: the JWK Set is empty/,
    );
    assert.throws(
      () => loadVerificationKeys("hello", "notes.txt"),
      /notes\.txt: no PEM key and not a JWK Set/,
    );
    assert.throws(() => loadVerificationKeys("{nope", "bad.json"), /bad\.json: not valid JSON/);
  });
});
