import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { generateSigningKeyPem, loadSigningKey, verifyBundle } from "@packrun/attestation";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { type EvidenceServer, startEvidenceServer } from "@packrun/evidence";
import { createLogger } from "@packrun/logging";
import { EventLevel, EvidenceService } from "@packrun/proto/evidence/v1";
import { RunState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, test } from "vitest";
import { boundApproval } from "../testing/bound-approval.ts";
import { type ExecutorStack, startExecutorStack } from "../testing/executor-stack.ts";

let evidence: EvidenceServer;
let evidenceDatabase: Database;
let stack: ExecutorStack;
let sessions: Http2SessionManager;
let client: ReturnType<typeof createClient<typeof EvidenceService>>;

beforeAll(async () => {
  // The executor stack creates the test database; evidence gets its own schema in it, and a
  // second executor wired to it (no RPCs) does the work and ships the outbox.
  const logger = createLogger({
    service: "evidence-test",
    level: process.env.PACKRUN_TEST_LOG ?? "silent",
  });
  stack = await startExecutorStack({ work: false });
  evidenceDatabase = createPostgresDatabase({ url: stack.databaseUrl, schema: "evidence" });
  evidence = await startEvidenceServer({
    database: evidenceDatabase,
    databaseUrl: stack.databaseUrl,
    logger,
    artifactRoot: await mkdtemp(join(tmpdir(), "packrun-artifacts-")),
    signingKey: loadSigningKey(generateSigningKeyPem("ed25519"), "test"),
    limits: { maxArtifactBytes: 1024 * 1024 },
  });
  await stack.addExecutor({
    evidenceUrl: evidence.url,
    executorId: "executor@test",
    serve: false,
  });
  sessions = new Http2SessionManager(evidence.url);
  client = createClient(
    EvidenceService,
    createGrpcTransport({ baseUrl: evidence.url, sessionManager: sessions }),
  );
});

afterAll(async () => {
  sessions.abort();
  await stack.close();
  await evidence.close();
  await evidenceDatabase.close();
});

test("a finished run has a gapless event log ending in its terminal event, an attestation and a bundle that verifies", async () => {
  const id = await stack.submit(
    `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: evidence-e2e, version: 1.0.0}
spec:
  secrets: [{name: token}]
  approvals: [{id: go}]
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {script: 'echo hello; echo "token is $T"', env: {T: "{{ secrets.token }}"}}}
    - id: approve
      gate: {approval: {id: go}}
    - id: bye
      run:
        uses: builtin:shell
        with: {script: 'echo bye; echo "{\\"critical\\": 0}" > report.json'}
        artifacts: [{name: report, path: report.json}]
`,
    { secrets: { token: "s3cr3t-value" } },
  );
  const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
  // A forged approval and one the gateway refused itself: both belong in the run's trail.
  await assert.rejects(
    stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "go",
        planHash: "sha256:forged",
        approver: "mallory",
        approve: true,
      }),
    ),
  );
  await stack.client.recordApprovalRefusal({
    tenant: "acme",
    runId: id,
    approvalId: "go",
    approver: "trent",
    code: "PERMISSION_DENIED",
    reason: "the token lacks the gate's grant",
  });
  await stack.client.decideApproval(
    boundApproval({
      tenant: "acme",
      runId: id,
      approvalId: "go",
      planHash: waiting.planHash,
      approver: "alice",
      approve: true,
    }),
  );
  const run = await stack.waitFor(id);
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);

  const deadline = Date.now() + 20_000;
  let finalized = false;
  while (!finalized && Date.now() < deadline) {
    finalized =
      (
        await stack.database.query<{ done: boolean }>(
          "SELECT finalized_at IS NOT NULL AS done FROM runs WHERE id = $1",
          [id],
        )
      ).rows[0]?.done === true;
    if (!finalized) await sleep(100);
  }
  assert.ok(finalized, "the run was finalised");

  const events = (await client.listEvents({ tenant: "acme", runId: id, pageSize: 1000 })).events;
  assert.deepEqual(
    events.map((event) => Number(event.sequence)),
    events.map((_, index) => index + 1),
    "sequence is gapless from 1",
  );
  assert.equal(events.at(-1)?.type, "run.succeeded");
  const types = events.map((event) => event.type);
  for (const expected of [
    "run.queued",
    "run.running",
    "step.running",
    "log.stdout",
    "gate.approved",
    "step.succeeded",
  ]) {
    assert.ok(types.includes(expected), `${expected} in ${types.join(", ")}`);
  }
  assert.deepEqual(
    events
      .filter((event) => event.type === "gate.approval_refused")
      .map((event) => [event.level, event.stepId, event.metadata]),
    [
      [
        EventLevel.WARN,
        "approve",
        { approver: "mallory", approvalId: "go", code: "APPROVAL_STALE" },
      ],
      [
        EventLevel.WARN,
        "approve",
        { approver: "trent", approvalId: "go", code: "PERMISSION_DENIED" },
      ],
    ],
  );
  const lines = events.filter((event) => event.type === "log.stdout").map((event) => event.message);
  assert.ok(lines.includes("hello") && lines.includes("bye"), lines.join("|"));
  assert.ok(lines.includes("token is ***"), "the secret is masked in the log");

  const attestation = await client.getAttestation({ tenant: "acme", runId: id });
  const envelope = JSON.parse(attestation.attestation?.envelopeJson ?? "{}") as {
    payloadType?: string;
    payload?: string;
  };
  assert.equal(envelope.payloadType, "application/vnd.in-toto+json");
  const statement = JSON.parse(Buffer.from(envelope.payload ?? "", "base64").toString("utf8"));
  assert.equal(statement.predicate.runId, id);
  assert.equal(statement.predicate.planHash, run.planHash);
  assert.deepEqual(
    statement.predicate.approvals.map((approval: { approver: string }) => approval.approver),
    ["alice"],
  );
  const chunks: Uint8Array[] = [];
  for await (const part of client.getBundle({ tenant: "acme", runId: id })) chunks.push(part.chunk);
  const bundle = Buffer.concat(chunks);
  assert.ok(!bundle.includes(Buffer.from("s3cr3t-value")), "no secret value in the bundle");
  const { keys } = await client.listVerificationKeys({});
  const report = await verifyBundle(bundle, { keys: keys.map((key) => key.publicKeyPem) });
  assert.equal(report.ok, true, JSON.stringify(report.failures));

  const artifacts = (await client.listArtifacts({ tenant: "acme", runId: id })).artifacts;
  const expected = `sha256:${createHash("sha256").update('{"critical": 0}\n').digest("hex")}`;
  assert.deepEqual(
    artifacts.map((artifact) => [artifact.name, artifact.stepId, artifact.digest, artifact.status]),
    [["report", "bye", expected, "stored"]],
  );
  assert.ok(
    statement.subject.some(
      (subject: { digest: { sha256: string } }) => `sha256:${subject.digest.sha256}` === expected,
    ),
    "the attestation binds the artifact",
  );
});

test("an artifact the store refuses fails the step with the store's reason, and nothing is recorded", async () => {
  const id = await stack.submit(
    `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: too-big, version: 1.0.0}
spec:
  steps:
    - id: big
      run:
        uses: builtin:shell
        with: {argv: [sh, -c, "head -c 3000000 /dev/zero > big.bin"]}
        artifacts: [{name: big, path: big.bin}]
`,
  );
  const run = await stack.waitFor(id);
  assert.equal(run.state, RunState.FAILED);
  assert.match(
    run.steps[0]?.reason ?? "",
    /artifact "big" could not be stored \(ARTIFACT_TOO_LARGE\)/,
  );
  const stored = await client.listArtifacts({ tenant: "acme", runId: id }).then(
    (response) => response.artifacts.filter((artifact) => artifact.status === "stored"),
    () => [],
  );
  assert.deepEqual(stored, []);
});
