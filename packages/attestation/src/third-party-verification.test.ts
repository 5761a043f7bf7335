/**
 * Proves that packrun's DSSE envelopes are accepted by an independent implementation: Sigstore's
 * own verifier (@sigstore/verify), fed a Sigstore bundle v0.3 that carries our envelope and names
 * our public key by hint, with no transparency log, CT log or timestamp authority required.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { bundleFromJSON } from "@sigstore/bundle";
import { type TrustMaterial, toSignedEntity, Verifier } from "@sigstore/verify";
import { test } from "vitest";
import type { DsseEnvelope } from "./dsse-envelope.ts";
import { buildStatement, inTotoPayloadType, serializeStatement } from "./in-toto.ts";
import {
  generateSigningKeyPem,
  type KeyAlgorithm,
  loadSigningKey,
  type VerificationKey,
} from "./keys.ts";
import { buildPredicate } from "./pack-run-predicate.ts";
import { parseRunRecord } from "./run-record.ts";
import { signEnvelope } from "./sign-envelope.ts";
import { readTarGz } from "./tar-gz.ts";
import { fixtureBundleSource, fixtureRunRecord } from "./test-fixtures.ts";
import { writeBundleToBuffer } from "./write-bundle.ts";

function sigstoreBundle(envelope: DsseEnvelope, keyId: string) {
  return bundleFromJSON({
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: {
      publicKey: { hint: keyId },
      tlogEntries: [],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    dsseEnvelope: {
      payload: envelope.payload,
      payloadType: envelope.payloadType,
      signatures: envelope.signatures.map(({ keyid, sig }) => ({ keyid, sig })),
    },
  });
}

function trustMaterial(keys: readonly VerificationKey[]): TrustMaterial {
  return {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: (hint) => {
      const key = keys.find((candidate) => candidate.keyId === hint);
      if (key === undefined) throw new Error(`no trusted key ${hint}`);
      return { publicKey: key.publicKey, validFor: () => true };
    },
  };
}

const verifier = (keys: readonly VerificationKey[]) =>
  new Verifier(trustMaterial(keys), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });

function attestation(algorithm: KeyAlgorithm) {
  const key = loadSigningKey(generateSigningKeyPem(algorithm));
  const predicate = buildPredicate(parseRunRecord(fixtureRunRecord("run-3p")), {
    artifacts: [],
    transcript: { events: 1, sizeBytes: 10, digest: `sha256:${"0".repeat(64)}` },
  });
  const envelope = signEnvelope(
    inTotoPayloadType,
    serializeStatement(buildStatement(predicate)),
    key,
  );
  return { key, envelope };
}

for (const algorithm of ["ed25519", "ecdsa-p256"] as const) {
  test(`@sigstore/verify accepts a packrun attestation signed with ${algorithm}`, () => {
    const { key, envelope } = attestation(algorithm);
    const entity = toSignedEntity(sigstoreBundle(envelope, key.keyId));
    const signer = verifier([key]).verify(entity);
    assert.equal(signer.key.export({ type: "spki", format: "pem" }), key.publicKeyPem);
  });

  test(`@sigstore/verify rejects a tampered ${algorithm} attestation and a foreign key`, () => {
    const { key, envelope } = attestation(algorithm);
    const statement = JSON.parse(Buffer.from(envelope.payload, "base64").toString());
    statement.predicate.status = "failed";
    const tampered = {
      ...envelope,
      payload: Buffer.from(JSON.stringify(statement)).toString("base64"),
    };
    assert.throws(
      () => verifier([key]).verify(toSignedEntity(sigstoreBundle(tampered, key.keyId))),
      {
        name: "VerificationError",
        code: "SIGNATURE_ERROR",
      },
    );
    const other = loadSigningKey(generateSigningKeyPem(algorithm));
    const impostor = { ...other, keyId: key.keyId };
    assert.throws(
      () => verifier([impostor]).verify(toSignedEntity(sigstoreBundle(envelope, key.keyId))),
      {
        name: "VerificationError",
        code: "SIGNATURE_ERROR",
      },
    );
  });
}

for (const algorithm of ["ed25519", "ecdsa-p256"] as const) {
  test(`@sigstore/verify accepts an ${algorithm} bundle.dsse.json, whose subjects are every other member`, async () => {
    const key = loadSigningKey(generateSigningKeyPem(algorithm));
    const archive = await readTarGz(await writeBundleToBuffer(fixtureBundleSource(key)));
    assert.ok(archive.ok);
    const envelope = JSON.parse(
      archive.members.get("bundle.dsse.json")?.toString("utf8") ?? "",
    ) as DsseEnvelope;
    const signer = verifier([key]).verify(toSignedEntity(sigstoreBundle(envelope, key.keyId)));
    assert.equal(signer.key.export({ type: "spki", format: "pem" }), key.publicKeyPem);
    const statement = JSON.parse(Buffer.from(envelope.payload, "base64").toString("utf8")) as {
      subject: { name: string; digest: { sha256: string } }[];
    };
    const others = [...archive.members.keys()].filter((path) => path !== "bundle.dsse.json");
    assert.deepEqual(
      statement.subject.map((subject) => subject.name),
      others.sort(),
    );
    for (const subject of statement.subject) {
      const content = archive.members.get(subject.name) as Buffer;
      assert.equal(createHash("sha256").update(content).digest("hex"), subject.digest.sha256);
    }
  });
}

test("ECDSA signatures are DER-encoded (ASN.1 SEQUENCE of r and s)", () => {
  const { envelope } = attestation("ecdsa-p256");
  const der = Buffer.from(envelope.signatures[0]?.sig ?? "", "base64");
  assert.equal(der[0], 0x30);
  assert.equal(der[1], der.length - 2);
});
