import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { test } from "vitest";
import { loadSigningKey, loadVerificationKey } from "./keys.ts";
import { preAuthEncoding } from "./pae.ts";
import { signEnvelope } from "./sign-envelope.ts";
import { verifyBytes, verifyEnvelope } from "./verify-envelope.ts";

// The test vector of the DSSE v1 protocol (secure-systems-lab/dsse, protocol.md, "Test Vectors").
const vector = {
  payloadType: "http://example.com/HelloWorld",
  body: "hello world",
  pae: "DSSEv1 29 http://example.com/HelloWorld 11 hello world",
  x: 46950820868899156662930047687818585632848591499744589407958293238635476079160n,
  y: 5640078356564379163099075877009565129882514886557779369047442380624545832820n,
  d: 97358161215184420915383655311931858321456579547487070936769975997791359926199n,
  envelope: {
    payload: "aGVsbG8gd29ybGQ=",
    payloadType: "http://example.com/HelloWorld",
    signatures: [
      {
        sig: "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==",
      },
    ],
  },
};

const b64url = (value: bigint) =>
  Buffer.from(value.toString(16).padStart(64, "0"), "hex").toString("base64url");
const jwk = { kty: "EC", crv: "P-256", x: b64url(vector.x), y: b64url(vector.y) };
const vectorPublicPem = createPublicKey({ key: jwk, format: "jwk" })
  .export({ type: "spki", format: "pem" })
  .toString();
const vectorPrivatePem = createPrivateKey({ key: { ...jwk, d: b64url(vector.d) }, format: "jwk" })
  .export({ type: "pkcs8", format: "pem" })
  .toString();

test("PAE of the spec's example is byte for byte the spec's", () => {
  const pae = preAuthEncoding(vector.payloadType, Buffer.from(vector.body));
  assert.equal(pae.toString("utf8"), vector.pae);
});

test("the spec's published signature verifies over our PAE with the spec's key", () => {
  const key = loadVerificationKey(vectorPublicPem);
  const pae = preAuthEncoding(vector.payloadType, Buffer.from(vector.body));
  const signature = Buffer.from(vector.envelope.signatures[0]?.sig ?? "", "base64");
  assert.equal(signature.length, 64, "the vector's signature is raw r||s");
  assert.ok(verifyBytes(key, pae, signature));
  // One byte of PAE framing different (the body length) and it no longer verifies.
  const wrong = Buffer.from(vector.pae.replace(" 11 ", " 12 "));
  assert.ok(!verifyBytes(key, wrong, signature));
});

test("the spec's envelope verifies with verifyEnvelope, and our signature over it too", () => {
  const key = loadVerificationKey(vectorPublicPem);
  const result = verifyEnvelope(vector.envelope, [key]);
  assert.ok(result.ok, result.ok ? "" : result.reason);
  assert.equal(result.payload.toString(), vector.body);
  const ours = signEnvelope(
    vector.payloadType,
    Buffer.from(vector.body),
    loadSigningKey(vectorPrivatePem),
  );
  assert.equal(ours.payload, vector.envelope.payload);
  assert.ok(verifyEnvelope(ours, [key]).ok);
});

test("PAE lengths count UTF-8 bytes, not characters", () => {
  const pae = preAuthEncoding("tÿpe", Buffer.from("é", "utf8"));
  assert.deepEqual(pae, Buffer.concat([Buffer.from("DSSEv1 5 tÿpe 2 é", "utf8")]));
  assert.equal(preAuthEncoding("", Buffer.alloc(0)).toString(), "DSSEv1 0  0 ");
});
