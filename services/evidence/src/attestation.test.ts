import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  approvalRequestPayloadType,
  approvalRequestType,
  collectBytes,
  generateSigningKeyPem,
  inTotoPayloadType,
  loadSigningKey,
  loadVerificationKey,
  type PackRunStatement,
  packRunPredicateType,
  readTarGz,
  verifyBundle,
  verifyEnvelope,
} from "@packrun/attestation";
import { fixturePlan, fixtureRunRecord } from "@packrun/attestation/testing";
import { type EvidenceService, PutArtifactRequestSchema } from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { bundleFromJSON } from "@sigstore/bundle";
import { toSignedEntity, Verifier } from "@sigstore/verify";
import pg from "pg";
import { beforeAll, describe, test } from "vitest";
import {
  ingestAll,
  startTestEvidence,
  type TestEvidence,
  testEvent,
  useEvidence,
} from "./test-helpers.ts";

type EvidenceClient = Client<typeof EvidenceService>;

/** Streams a plausible run into the log: started, step events, logs, the terminal event. */
async function recordRun(client: EvidenceClient, runId: string, status = "succeeded") {
  const events = [
    testEvent(runId, "1", { type: "run.started", stepId: "" }),
    testEvent(runId, "2", { type: "step.started", stepId: "build" }),
    testEvent(runId, "3", { type: "log.stdout", stepId: "build", message: "token=[MASKED]" }),
    testEvent(runId, "4", { type: "step.succeeded", stepId: "build" }),
    testEvent(runId, "5", { type: "gate.approved", stepId: "approve" }),
    testEvent(runId, "6", { type: `run.${status}`, stepId: "" }),
  ];
  await ingestAll(client, events);
}

async function upload(client: EvidenceClient, runId: string, name: string, content: Buffer) {
  const response = await client.putArtifact(
    (async function* () {
      yield create(PutArtifactRequestSchema, {
        part: {
          case: "header",
          value: {
            tenant: "acme",
            runId,
            stepId: "build",
            name,
            type: "file",
            sourcePath: `dist/${name}`,
          },
        },
      });
      yield create(PutArtifactRequestSchema, { part: { case: "chunk", value: content } });
    })(),
  );
  return response.artifact;
}

function finalize(
  client: EvidenceClient,
  runId: string,
  overrides: Record<string, unknown> = {},
  planJson = fixturePlan().planJson,
) {
  return client.finalizeRun({
    tenant: "acme",
    runId,
    runRecord: { ...fixtureRunRecord(runId), ...overrides } as unknown as JsonObject,
    planJson,
  });
}

async function download(client: EvidenceClient, runId: string): Promise<Buffer> {
  return collectBytes(
    (async function* () {
      for await (const part of client.getBundle({ tenant: "acme", runId })) yield part.chunk;
    })(),
  );
}

function failsWith(code: Code, packrunCode: string, message?: RegExp) {
  return (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, code, connectError.message);
    assert.equal(connectError.metadata.get(errorCodeHeader), packrunCode);
    if (message) assert.match(connectError.rawMessage, message);
    return true;
  };
}

function statementOf(envelopeJson: string): PackRunStatement {
  const envelope = JSON.parse(envelopeJson) as { payload: string };
  return JSON.parse(Buffer.from(envelope.payload, "base64").toString()) as PackRunStatement;
}

async function trustedKeys(client: EvidenceClient) {
  const { keys } = await client.listVerificationKeys({});
  return keys.map((key) => loadVerificationKey(key.publicKeyPem));
}

describe("attestations and bundles", () => {
  const fixture = useEvidence("evidence_attest", { limits: { bundleArtifactMaxBytes: 1000 } });
  let evidence: TestEvidence;
  beforeAll(() => {
    evidence = fixture.evidence;
  });

  test("FinalizeRun signs an in-toto statement binding the run; our verifier and Sigstore's accept it", async () => {
    const runId = "run-attest";
    await recordRun(evidence.client, runId);
    const small = await upload(evidence.client, runId, "app", Buffer.from("binary"));
    await upload(evidence.client, runId, "big.log", Buffer.alloc(5000, "l"));
    const { attestation, created } = await finalize(evidence.client, runId);
    assert.equal(created, true);
    assert.equal(attestation?.keyId, evidence.signingKey.keyId);
    const envelope = JSON.parse(attestation?.envelopeJson ?? "{}");
    assert.equal(envelope.payloadType, inTotoPayloadType);
    const verified = verifyEnvelope(envelope, await trustedKeys(evidence.client));
    assert.ok(verified.ok);

    const statement = statementOf(attestation?.envelopeJson ?? "");
    assert.equal(statement._type, "https://in-toto.io/Statement/v1");
    assert.equal(statement.predicateType, packRunPredicateType);
    const { predicate } = statement;
    const { planHash } = fixturePlan();
    assert.equal(predicate.runId, runId);
    assert.equal(predicate.planHash, planHash);
    assert.deepEqual(predicate.pack, fixtureRunRecord(runId).pack);
    assert.deepEqual(predicate.secrets, [{ name: "token", redacted: true }]);
    assert.deepEqual(predicate.transcript.events, 6);
    assert.deepEqual(
      predicate.steps.map((step) => [step.id, step.status, step.attempts]),
      [
        ["build", "succeeded", 2],
        ["approve", "succeeded", 0],
        ["fanout[0]::publish", "succeeded", 1],
        ["fanout[1]::publish", "succeeded", 1],
      ],
    );
    assert.equal(predicate.approvals[0]?.approver, "alice@example.com");
    assert.deepEqual(
      statement.subject.map((subject) => subject.name),
      [
        "artifacts/build/app",
        "artifacts/build/big.log",
        "outputs/binary",
        "outputs/summary",
        "plan.json",
      ],
    );
    assert.equal(`sha256:${statement.subject[0]?.digest.sha256}`, small?.digest);

    // An independent implementation: Sigstore's verifier over a v0.3 bundle with our key by hint.
    const key = evidence.signingKey;
    const sigstoreBundle = bundleFromJSON({
      mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      verificationMaterial: {
        publicKey: { hint: key.keyId },
        tlogEntries: [],
        timestampVerificationData: { rfc3161Timestamps: [] },
      },
      dsseEnvelope: envelope,
    });
    const verifier = new Verifier(
      {
        certificateAuthorities: [],
        timestampAuthorities: [],
        tlogs: [],
        ctlogs: [],
        publicKey: () => ({ publicKey: key.publicKey, validFor: () => true }),
      },
      { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 },
    );
    verifier.verify(toSignedEntity(sigstoreBundle));

    const stored = await evidence.client.getAttestation({ tenant: "acme", runId });
    assert.equal(stored.attestation?.envelopeJson, attestation?.envelopeJson);
    await assert.rejects(
      upload(evidence.client, runId, "late", Buffer.from("late")),
      failsWith(Code.FailedPrecondition, "RUN_FINISHED"),
    );
  });

  test("GetBundle streams the same bytes every time, and the bundle verifies against the listed keys", async () => {
    const runId = "run-attest";
    const first = await download(evidence.client, runId);
    const second = await download(evidence.client, runId);
    assert.ok(first.equals(second), "deterministic bundle");
    const report = await verifyBundle(first, { keys: await trustedKeys(evidence.client) });
    assert.deepEqual(report.failures, []);
    assert.equal(report.keyTrusted, true);
    assert.equal(report.runId, runId);
    const archive = await readTarGz(first);
    assert.ok(archive.ok);
    const index = JSON.parse(archive.members.get("artifacts/index.json")?.toString() ?? "{}");
    assert.deepEqual(
      index.artifacts.map((artifact: { name: string; included: boolean }) => [
        artifact.name,
        artifact.included,
      ]),
      [
        ["app", true],
        ["big.log", false],
      ],
      "artifacts over the bundle limit are listed, not included",
    );
    const transcript =
      archive.members.get("transcript.ndjson")?.toString().trim().split("\n") ?? [];
    assert.deepEqual(
      transcript.map((line) => JSON.parse(line).sequence),
      [1, 2, 3, 4, 5, 6],
    );
    const inputs = JSON.parse(archive.members.get("inputs.json")?.toString() ?? "{}");
    assert.deepEqual(inputs.secrets, [{ name: "token", value: "[REDACTED]" }]);
    // The run stored artifacts: SLSA provenance of both, signed by the same key, and checked.
    const provenance = JSON.parse(archive.members.get("provenance.dsse.json")?.toString() ?? "{}");
    assert.ok(verifyEnvelope(provenance, await trustedKeys(evidence.client)).ok);
    const statement = JSON.parse(Buffer.from(provenance.payload, "base64").toString());
    assert.equal(statement.predicateType, "https://slsa.dev/provenance/v1");
    assert.deepEqual(
      statement.subject.map((subject: { name: string }) => subject.name),
      ["artifacts/build/app", "artifacts/build/big.log"],
    );
    assert.equal(
      statement.predicate.buildDefinition.externalParameters.planHash,
      fixturePlan().planHash,
    );
    assert.ok(report.checks.some((check) => check.check === "provenance" && check.ok));
  });

  test("a run without artifacts gets no provenance (SLSA provenance needs a subject)", async () => {
    const runId = "run-no-artifacts";
    await recordRun(evidence.client, runId);
    await finalize(evidence.client, runId);
    const bundle = await download(evidence.client, runId);
    const archive = await readTarGz(bundle);
    assert.ok(archive.ok);
    assert.equal(archive.members.has("provenance.dsse.json"), false);
    const report = await verifyBundle(bundle, { keys: await trustedKeys(evidence.client) });
    assert.deepEqual(report.failures, []);
    const { rows } = await evidence.database.query<{ provenance: string | null }>(
      "SELECT provenance_envelope_json AS provenance FROM evidence.attestations WHERE run_id = $1",
      [runId],
    );
    assert.equal(rows[0]?.provenance, null);
  });

  test("FinalizeRun raced 10 times on two replicas creates exactly one attestation", async () => {
    const runId = "run-race";
    await recordRun(evidence.client, runId);
    const replica = await startTestEvidence(fixture.database.url, {
      artifactRoot: evidence.artifactRoot,
      signingKey: evidence.signingKey,
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          finalize((index % 2 === 0 ? evidence : replica).client, runId),
        ),
      );
      assert.equal(results.filter((result) => result.created).length, 1);
      assert.equal(new Set(results.map((result) => result.attestation?.envelopeJson)).size, 1);
      const { rows } = await evidence.database.query<{ count: number }>(
        "SELECT count(*)::int AS count FROM evidence.attestations WHERE run_id = $1",
        [runId],
      );
      assert.equal(rows[0]?.count, 1);
    } finally {
      await replica.close();
    }
  });

  test("a crash during finalisation leaves nothing; the retry creates the one attestation, later retries return it", async () => {
    const runId = "run-crash";
    await recordRun(evidence.client, runId);
    const admin = new pg.Client({ connectionString: fixture.database.url });
    await admin.connect();
    try {
      // The process "dies" inside the finalisation transaction: the insert fails once.
      await admin.query(`
        CREATE TABLE public.crash_once (armed boolean);
        INSERT INTO public.crash_once VALUES (true);
        CREATE FUNCTION public.crash_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF (SELECT armed FROM public.crash_once) THEN
            UPDATE public.crash_once SET armed = false;
            RAISE EXCEPTION 'simulated crash during finalisation';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER crash_once BEFORE INSERT ON evidence.attestations
          FOR EACH ROW EXECUTE FUNCTION public.crash_once();`);
      await assert.rejects(finalize(evidence.client, runId), failsWith(Code.Internal, "INTERNAL"));
      // The failed attempt's UPDATE rolled back with it: disarm for real.
      await admin.query("UPDATE public.crash_once SET armed = false");
      await assert.rejects(
        evidence.client.getAttestation({ tenant: "acme", runId }),
        failsWith(Code.NotFound, "ATTESTATION_NOT_FOUND"),
      );
      const retry = await finalize(evidence.client, runId);
      assert.equal(retry.created, true);
      // A restarted service asked again returns the stored one.
      const restarted = await startTestEvidence(fixture.database.url, {
        artifactRoot: evidence.artifactRoot,
      });
      try {
        const again = await finalize(restarted.client, runId);
        assert.equal(again.created, false);
        assert.equal(again.attestation?.envelopeJson, retry.attestation?.envelopeJson);
      } finally {
        await restarted.close();
      }
    } finally {
      await admin
        .query("DROP TRIGGER IF EXISTS crash_once ON evidence.attestations")
        .catch(() => {});
      await admin.end();
    }
  });

  test("refusals: unfinished run, wrong plan, contradicting or malformed record, other tenant", async () => {
    const runId = "run-refuse";
    await ingestAll(evidence.client, [testEvent(runId, "1", { type: "run.started", stepId: "" })]);
    await assert.rejects(
      finalize(evidence.client, runId),
      failsWith(Code.FailedPrecondition, "RUN_NOT_FINISHED"),
    );
    await assert.rejects(
      download(evidence.client, runId),
      failsWith(Code.NotFound, "ATTESTATION_NOT_FOUND"),
    );
    await ingestAll(evidence.client, [testEvent(runId, "2", { type: "run.failed", stepId: "" })]);
    await assert.rejects(
      finalize(
        evidence.client,
        runId,
        {},
        fixturePlan().planJson.replace("eu-west-1", "us-east-1"),
      ),
      failsWith(Code.InvalidArgument, "PLAN_HASH_MISMATCH", /refusing to attest/),
    );
    await assert.rejects(
      finalize(evidence.client, runId, {}, "{not json"),
      failsWith(Code.InvalidArgument, "REQUEST_INVALID"),
    );
    await assert.rejects(
      finalize(evidence.client, runId),
      failsWith(
        Code.InvalidArgument,
        "RUN_RECORD_INVALID",
        /status is succeeded, but the run ended with run\.failed/,
      ),
    );
    await assert.rejects(
      finalize(evidence.client, runId, {
        status: "failed",
        steps: [
          {
            id: "ghost",
            status: "failed",
            attempts: 1,
            exitCode: 1,
            startedAt: null,
            finishedAt: null,
          },
        ],
      }),
      failsWith(Code.InvalidArgument, "RUN_RECORD_INVALID", /step ghost is not in the plan/),
    );
    await assert.rejects(
      finalize(evidence.client, runId, { status: "failed", secretValues: { token: "hunter2" } }),
      failsWith(Code.InvalidArgument, "RUN_RECORD_INVALID", /secretValues/),
    );
    await assert.rejects(
      finalize(evidence.client, runId, { status: "failed", runId: "someone-else" }),
      failsWith(Code.InvalidArgument, "RUN_RECORD_INVALID"),
    );
    await assert.rejects(
      evidence.client.finalizeRun({ tenant: "umbrella", runId, runRecord: {}, planJson: "{}" }),
      failsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
    // A pack source that is not the attested pack (its digest is the record's pack.digest).
    await assert.rejects(
      evidence.client.finalizeRun({
        tenant: "acme",
        runId,
        runRecord: { ...fixtureRunRecord(runId), status: "failed" } as unknown as JsonObject,
        planJson: fixturePlan().planJson,
        packSource: "apiVersion: stellaops.io/pack.v1\n# some other pack\n",
      }),
      failsWith(Code.InvalidArgument, "RUN_RECORD_INVALID", /pack_source hashes to sha256:/),
    );
    const { created } = await finalize(evidence.client, runId, { status: "failed" });
    assert.equal(created, true);
    await assert.rejects(
      evidence.client.getBundle({ tenant: "umbrella", runId })[Symbol.asyncIterator]().next(),
      failsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
  });

  test("SignApprovalRequest signs a valid request of the named run with the listed key, and nothing else", async () => {
    const runId = "run-approval-request";
    const payload = {
      _type: approvalRequestType,
      requestId: randomUUID(),
      nonce: "n".repeat(43),
      tenant: "acme",
      runId,
      pack: { name: "demo", version: "1.0.0", digest: `sha256:${"ab".repeat(32)}` },
      planHash: `sha256:${"cd".repeat(32)}`,
      gate: { stepId: "release-gate", approvalId: "release", message: "", grants: [] },
      inputs: [],
      quorum: { required: 1, approvedBy: [] },
      issuedAt: "2026-01-31T12:00:00.000Z",
      expiresAt: "2026-02-01T12:00:00.000Z",
      requestedBy: "alice",
    };
    const signed = await evidence.client.signApprovalRequest({
      tenant: "acme",
      runId,
      payloadJson: JSON.stringify(payload),
    });
    const verified = verifyEnvelope(
      JSON.parse(signed.envelopeJson),
      await trustedKeys(evidence.client),
    );
    assert.ok(verified.ok);
    assert.equal(verified.payloadType, approvalRequestPayloadType);
    assert.equal(verified.keyId, signed.keyId);
    assert.deepEqual(JSON.parse(verified.payload.toString("utf8")), payload);
    await assert.rejects(
      evidence.client.signApprovalRequest({
        tenant: "acme",
        runId: "another-run",
        payloadJson: JSON.stringify(payload),
      }),
      failsWith(Code.InvalidArgument, "REQUEST_INVALID", /not run another-run of tenant acme/),
    );
    await assert.rejects(
      evidence.client.signApprovalRequest({
        tenant: "umbrella",
        runId,
        payloadJson: JSON.stringify(payload),
      }),
      failsWith(Code.InvalidArgument, "REQUEST_INVALID"),
    );
    // Anything but an approval request (an in-toto statement, say) is not signed.
    await assert.rejects(
      evidence.client.signApprovalRequest({
        tenant: "acme",
        runId,
        payloadJson: JSON.stringify({ ...payload, _type: "https://in-toto.io/Statement/v1" }),
      }),
      failsWith(Code.InvalidArgument, "REQUEST_INVALID", /_type/),
    );
  });

  test("a stock @grpc/grpc-js client can read keys and attestations", async () => {
    const protoPath = fileURLToPath(
      new URL("../../../proto/packrun/evidence/v1/evidence.proto", import.meta.url),
    );
    const includeDir = fileURLToPath(new URL("../../../proto", import.meta.url));
    const definition = protoLoader.loadSync(protoPath, {
      includeDirs: [includeDir],
      keepCase: false,
      longs: String,
      enums: String,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      packrun: { evidence: { v1: { EvidenceService: grpc.ServiceClientConstructor } } };
    };
    const client = new loaded.packrun.evidence.v1.EvidenceService(
      evidence.server.url.replace("http://", ""),
      grpc.credentials.createInsecure(),
    );
    const call = <T>(method: string, request: object) =>
      new Promise<T>((resolve, reject) =>
        (
          client[method] as (r: object, cb: (e: grpc.ServiceError | null, v: T) => void) => void
        ).call(client, request, (error, value) => (error ? reject(error) : resolve(value))),
      );
    try {
      const keys = await call<{ keys: { keyId: string; active: boolean }[] }>(
        "listVerificationKeys",
        {},
      );
      assert.deepEqual(
        keys.keys.map((key) => [key.keyId, key.active]),
        [[evidence.signingKey.keyId, true]],
      );
      const stored = await call<{ attestation: { runId: string; keyId: string } }>(
        "getAttestation",
        { tenant: "acme", runId: "run-attest" },
      );
      assert.equal(stored.attestation.keyId, evidence.signingKey.keyId);
      await assert.rejects(call("getAttestation", { tenant: "umbrella", runId: "run-attest" }), {
        code: grpc.status.NOT_FOUND,
      });
    } finally {
      client.close();
    }
  });
});

describe("key rotation", () => {
  const fixture = useEvidence("evidence_rotation");

  test("after rotating to a new key, old attestations still verify with the listed keys", async () => {
    const old = fixture.evidence;
    await recordRun(old.client, "run-before");
    await finalize(old.client, "run-before");
    const oldBundle = await download(old.client, "run-before");

    const next = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
    const rotated = await startTestEvidence(fixture.database.url, {
      artifactRoot: old.artifactRoot,
      signingKey: next,
      verificationKeys: [loadVerificationKey(old.signingKey.publicKeyPem)],
    });
    try {
      const { keys } = await rotated.client.listVerificationKeys({});
      assert.deepEqual(
        keys.map((key) => [key.keyId, key.algorithm, key.active]),
        [
          [next.keyId, "ecdsa-p256", true],
          [old.signingKey.keyId, "ed25519", false],
        ],
      );
      await recordRun(rotated.client, "run-after");
      const { attestation } = await finalize(rotated.client, "run-after");
      assert.equal(attestation?.keyId, next.keyId);
      const listed = keys.map((key) => key.publicKeyPem);
      const rebuiltOld = await download(rotated.client, "run-before");
      // The run's attestation is unchanged, but its member list is now signed by the new key
      // (the only one with a private half), so the rebuilt bundle differs from the old one.
      assert.ok(!rebuiltOld.equals(oldBundle), "the member list is signed by the new key");
      const before = await verifyBundle(rebuiltOld, { keys: listed });
      const after = await verifyBundle(await download(rotated.client, "run-after"), {
        keys: listed,
      });
      assert.deepEqual(
        [before.ok, before.keyId, before.bundleKeyId, after.ok, after.keyId],
        [true, old.signingKey.keyId, next.keyId, true, next.keyId],
      );
      assert.equal((await verifyBundle(oldBundle, { keys: listed })).ok, true);
      const withoutOld = await verifyBundle(rebuiltOld, { keys: [next.publicKeyPem] });
      assert.equal(withoutOld.ok, false);
    } finally {
      await rotated.close();
    }
  });
});
