/**
 * SLSA Provenance v1 of a run: its shape against a JSON Schema written from the SLSA v1
 * provenance specification, its envelope with Sigstore's own DSSE verifier (offline, public key
 * only), and `verifyBundle` refusing provenance that is forged, re-signed or about another run.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { planPack } from "@packrun/planning";
import { bundleFromJSON } from "@sigstore/bundle";
import { toSignedEntity, Verifier } from "@sigstore/verify";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { describe, test } from "vitest";
import type { DsseEnvelope } from "./dsse-envelope.ts";
import { inTotoPayloadType, parseStatement } from "./in-toto.ts";
import { generateSigningKeyPem, loadSigningKey, type SigningKey } from "./keys.ts";
import { parseRunRecord } from "./run-record.ts";
import { signEnvelope } from "./sign-envelope.ts";
import {
  buildProvenanceStatement,
  containerImagesOf,
  type ProvenanceStatement,
  serializeProvenanceStatement,
  slsaProvenancePredicateType,
} from "./slsa-provenance.ts";
import { readTarGz } from "./tar-gz.ts";
import { fixtureBundleSource, fixturePlan, fixtureRunRecord } from "./test-fixtures.ts";
import { verifyBundle } from "./verify-bundle.ts";
import { writeBundleToBuffer } from "./write-bundle.ts";

const schema = JSON.parse(
  readFileSync(new URL("./testing/slsa-provenance-v1.schema.json", import.meta.url), "utf8"),
) as object;
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats.default(ajv);
const compiled = ajv.compile(schema);
const validateSlsa = (value: unknown): boolean => compiled(value);

/** The statement as a consumer parses it from the signed bytes. */
interface ProvenanceJson {
  subject: unknown[];
  predicate: {
    buildDefinition: { buildType: string; resolvedDependencies: unknown[] };
    runDetails?: unknown;
  };
}
const asJson = (statement: ProvenanceStatement) =>
  JSON.parse(serializeProvenanceStatement(statement).toString("utf8")) as ProvenanceJson;

const pinned = `registry.example/tools/lint@sha256:${"ef".repeat(32)}`;
const containerManifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: images, version: 2.0.0}
spec:
  inputs:
    - {name: target, type: string, default: prod}
  steps:
    - id: lint
      run: {uses: builtin:container, with: {image: "${pinned}", command: [lint]}}
    - id: test
      run: {uses: builtin:container, with: {image: "alpine:3.20", command: [sh, -c, "true"]}}
    - id: fan
      parallel:
        steps:
          - id: again
            run: {uses: builtin:container, with: {image: "${pinned}", command: [lint, --again]}}
`;

/** The fixture bundle source plus the provenance the evidence service would sign for it. */
function sourceWithProvenance(key: SigningKey, edit?: (statement: ProvenanceStatement) => void) {
  const source = fixtureBundleSource(key);
  const payload = Buffer.from(source.envelope.payload, "base64");
  const parsed = parseStatement(payload);
  assert.ok(parsed.ok);
  const record = parseRunRecord(fixtureRunRecord("run-fixture-1"));
  const statement = buildProvenanceStatement(
    parsed.statement.predicate,
    record,
    fixturePlan().plan,
  );
  edit?.(statement);
  const provenanceEnvelope = signEnvelope(
    inTotoPayloadType,
    serializeProvenanceStatement(statement),
    key,
  );
  return { source: { ...source, provenanceEnvelope }, statement, provenanceEnvelope };
}

function sigstoreVerifier(key: SigningKey) {
  return new Verifier(
    {
      certificateAuthorities: [],
      timestampAuthorities: [],
      tlogs: [],
      ctlogs: [],
      publicKey: (hint) => {
        if (hint !== key.keyId) throw new Error(`no trusted key ${hint}`);
        return { publicKey: key.publicKey, validFor: () => true };
      },
    },
    { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 },
  );
}

function sigstoreEntity(envelope: DsseEnvelope, keyId: string) {
  return toSignedEntity(
    bundleFromJSON({
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
    }),
  );
}

describe("SLSA Provenance v1", () => {
  test("matches the specification's required structure and says what ran", () => {
    const { statement } = sourceWithProvenance(loadSigningKey(generateSigningKeyPem("ed25519")));
    assert.ok(validateSlsa(asJson(statement)), ajv.errorsText(compiled.errors));
    const json = statement;
    assert.equal(json.predicateType, slsaProvenancePredicateType);
    // Subjects: the artifacts only (not the plan or outputs, which the pack-run statement binds).
    assert.deepEqual(
      json.subject.map((subject) => subject.name),
      ["artifacts/build/app", "artifacts/scan.json"],
    );
    const { externalParameters, resolvedDependencies } = json.predicate.buildDefinition;
    assert.deepEqual(externalParameters.pack, {
      name: "release-notes",
      version: "1.2.0",
      digest: `sha256:${"ab".repeat(32)}`,
    });
    assert.equal(externalParameters.planHash, fixturePlan().planHash);
    assert.deepEqual(externalParameters.inputs, { region: "eu-west-1", shards: ["a", "b"] });
    // The secret's name is in the run record; neither it nor a value reaches the provenance.
    assert.doesNotMatch(JSON.stringify(json), /token/);
    assert.deepEqual(resolvedDependencies, [
      { uri: "pack:release-notes@1.2.0", name: "pack.yaml", digest: { sha256: "ab".repeat(32) } },
    ]);
    assert.deepEqual(json.predicate.runDetails, {
      builder: {
        id: "https://packrun.dev/builders/executor@test",
        version: { "packrun-executor": "0.1.0" },
      },
      metadata: {
        invocationId: "run-fixture-1",
        startedOn: "2026-01-31T12:00:00.000Z",
        finishedOn: "2026-01-31T12:01:02.000Z",
      },
    });
  });

  test("the schema is not a formality: it refuses what the specification forbids", () => {
    const { statement } = sourceWithProvenance(loadSigningKey(generateSigningKeyPem("ed25519")));
    const broken: ((value: ProvenanceJson) => void)[] = [
      (value) => {
        delete value.predicate.runDetails;
      },
      (value) => {
        value.predicate.buildDefinition.buildType = "not a uri";
      },
      (value) => {
        value.subject = [];
      },
      (value) => {
        value.predicate.buildDefinition.resolvedDependencies.push({
          name: "neither uri nor digest",
        });
      },
    ];
    for (const edit of broken) {
      const value = asJson(statement);
      edit(value);
      assert.equal(validateSlsa(value), false, JSON.stringify(value).slice(0, 200));
    }
  });

  test("every container image is a resolved dependency, by digest when the plan pins one", () => {
    const { plan } = planPack(containerManifest, { inputs: {} });
    assert.deepEqual(containerImagesOf(plan), [
      { reference: "alpine:3.20", stepIds: ["test"] },
      { reference: pinned, stepIds: ["again", "lint"] },
    ]);
    const source = fixtureBundleSource(loadSigningKey(generateSigningKeyPem("ed25519")));
    const parsed = parseStatement(Buffer.from(source.envelope.payload, "base64"));
    assert.ok(parsed.ok);
    const statement = buildProvenanceStatement(parsed.statement.predicate, { inputs: {} }, plan);
    assert.deepEqual(statement.predicate.buildDefinition.resolvedDependencies.slice(1), [
      { uri: "oci:alpine:3.20", name: "image of test", annotations: { pinned: false } },
      { uri: `oci:${pinned}`, name: "image of again, lint", digest: { sha256: "ef".repeat(32) } },
    ]);
    assert.ok(validateSlsa(asJson(statement)), ajv.errorsText(compiled.errors));

    // What ran wins: the digests the container engine resolved, per reference (a tag that moved
    // between two attempts shows both); a planned image that never ran keeps the plan's view.
    const ran = buildProvenanceStatement(
      parsed.statement.predicate,
      {
        inputs: {},
        images: [
          { stepId: "test", reference: "alpine:3.20", digest: `sha256:${"a1".repeat(32)}` },
          { stepId: "test", reference: "alpine:3.20", digest: `sha256:${"a2".repeat(32)}` },
        ],
      },
      plan,
    );
    assert.deepEqual(ran.predicate.buildDefinition.resolvedDependencies.slice(1), [
      { uri: "oci:alpine:3.20", name: "image of test", digest: { sha256: "a1".repeat(32) } },
      { uri: "oci:alpine:3.20", name: "image of test", digest: { sha256: "a2".repeat(32) } },
      { uri: `oci:${pinned}`, name: "image of again, lint", digest: { sha256: "ef".repeat(32) } },
    ]);
    assert.ok(validateSlsa(asJson(ran)), ajv.errorsText(compiled.errors));
  });

  for (const algorithm of ["ed25519", "ecdsa-p256"] as const) {
    test(`@sigstore/verify accepts the ${algorithm} provenance envelope offline and refuses it altered`, () => {
      const key = loadSigningKey(generateSigningKeyPem(algorithm));
      const { provenanceEnvelope } = sourceWithProvenance(key);
      const signer = sigstoreVerifier(key).verify(sigstoreEntity(provenanceEnvelope, key.keyId));
      assert.equal(signer.key.export({ type: "spki", format: "pem" }), key.publicKeyPem);
      const statement = JSON.parse(Buffer.from(provenanceEnvelope.payload, "base64").toString());
      statement.predicate.buildDefinition.externalParameters.inputs.region = "us-east-1";
      const altered = {
        ...provenanceEnvelope,
        payload: Buffer.from(JSON.stringify(statement)).toString("base64"),
      };
      assert.throws(() => sigstoreVerifier(key).verify(sigstoreEntity(altered, key.keyId)), {
        name: "VerificationError",
        code: "SIGNATURE_ERROR",
      });
    });
  }

  test("a bundle carries provenance.dsse.json and verifyBundle checks it against the attestation", async () => {
    const key = loadSigningKey(generateSigningKeyPem("ed25519"));
    const { source } = sourceWithProvenance(key);
    const bytes = await writeBundleToBuffer(source);
    const archive = await readTarGz(bytes);
    assert.ok(archive.ok);
    assert.ok(archive.members.has("provenance.dsse.json"));
    const report = await verifyBundle(bytes, { keys: [key.publicKeyPem] });
    assert.ok(report.ok, JSON.stringify(report.failures));
    const check = report.checks.find((entry) => entry.check === "provenance");
    assert.match(check?.message ?? "", /SLSA Provenance v1 of 2 artifacts/);
  });

  test("provenance about something else, or signed by another key, fails verification", async () => {
    const key = loadSigningKey(generateSigningKeyPem("ed25519"));
    const forgeries: [string, (statement: ProvenanceStatement) => void, RegExp][] = [
      [
        "an extra subject",
        (statement) => {
          statement.subject.push({ name: "artifacts/evil", digest: { sha256: "00".repeat(32) } });
        },
        /subjects are not the attested artifacts/,
      ],
      [
        "another plan",
        (statement) => {
          statement.predicate.buildDefinition.externalParameters.planHash = `sha256:${"11".repeat(32)}`;
        },
        /planHash/,
      ],
      [
        "other inputs",
        (statement) => {
          statement.predicate.buildDefinition.externalParameters.inputs.region = "us-east-1";
        },
        /inputs are not the attested input values/,
      ],
      [
        "another run",
        (statement) => {
          statement.predicate.runDetails.metadata.invocationId = "run-other";
        },
        /invocationId run-other is not the run/,
      ],
      [
        "a pack without its digest",
        (statement) => {
          statement.predicate.buildDefinition.resolvedDependencies = [];
        },
        /pack is not among its resolvedDependencies/,
      ],
    ];
    for (const [what, edit, reason] of forgeries) {
      const { source } = sourceWithProvenance(key, edit);
      const report = await verifyBundle(await writeBundleToBuffer(source), {
        keys: [key.publicKeyPem],
      });
      assert.equal(report.ok, false, what);
      const failure = report.failures.find((entry) => entry.check === "provenance");
      assert.match(failure?.message ?? "", reason, what);
      assert.equal(failure?.member, "provenance.dsse.json");
    }

    // Signed by a key the verifier does not trust (the rest of the bundle by the trusted one).
    const impostor = loadSigningKey(generateSigningKeyPem("ed25519"));
    const { source, statement } = sourceWithProvenance(key);
    const foreign = signEnvelope(
      inTotoPayloadType,
      serializeProvenanceStatement(statement),
      impostor,
    );
    const report = await verifyBundle(
      await writeBundleToBuffer({ ...source, provenanceEnvelope: foreign }),
      { keys: [key.publicKeyPem] },
    );
    assert.equal(report.ok, false);
    assert.ok(
      report.failures.some(
        (entry) => entry.check === "signature" && entry.member === "provenance.dsse.json",
      ),
      JSON.stringify(report.failures),
    );
  });
});
