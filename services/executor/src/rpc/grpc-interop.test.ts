/**
 * A stock gRPC client (@grpc/grpc-js + @grpc/proto-loader reading the .proto sources, no
 * generated code) calls every RPC of the executor and the evidence service, unary and
 * streaming, and grpc.health.v1 on each: the contracts are plain gRPC. Deadlines on a live
 * run's streams end DEADLINE_EXCEEDED, never like a finished run.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  generateSigningKeyPem,
  loadSigningKey,
  parseApprovalRequest,
  signApprovalResponse,
} from "@packrun/attestation";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { type EvidenceServer, startEvidenceServer } from "@packrun/evidence";
import { createLogger } from "@packrun/logging";
import { SubscribeEventsRequestSchema } from "@packrun/proto/evidence/v1";
import { GetRunRequestSchema, WatchRunRequestSchema } from "@packrun/proto/executor/v1";
import { loadStockService } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { type ExecutorStack, startExecutorStack } from "../testing/executor-stack.ts";

const run = promisify(execFile);

type Callback = (error: grpc.ServiceError | null, response: Record<string, unknown>) => void;
type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** A unary call as a promise; a status error resolves too, as `{ error }`. */
function unary(
  client: AnyClient,
  method: string,
  request: object,
): Promise<{ response?: Record<string, unknown>; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    (client[method] as (request: object, callback: Callback) => void).call(
      client,
      request,
      (error, response) => resolve(error ? { error } : { response }),
    );
  });
}

/** A nested field of a loosely typed grpc-js message (undefined when absent). */
function field<T = unknown>(value: unknown, ...path: string[]): T {
  let node = value;
  for (const key of path) node = (node as Record<string, unknown> | undefined)?.[key];
  return node as T;
}

/** Reads a server stream to its end. */
function serverStream(
  client: AnyClient,
  method: string,
  request: object,
): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const stream = (
      client[method] as (request: object) => grpc.ClientReadableStream<Record<string, unknown>>
    ).call(client, request);
    const messages: Record<string, unknown>[] = [];
    stream.on("data", (message) => messages.push(message));
    stream.on("end", () => resolve(messages));
    stream.on("error", reject);
  });
}

let stack: ExecutorStack;
let evidence: EvidenceServer;
let evidenceDatabase: Database;
let executorClient: AnyClient;
let evidenceClient: AnyClient;
const clients: grpc.Client[] = [];

beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  evidenceDatabase = createPostgresDatabase({ url: stack.databaseUrl, schema: "evidence" });
  evidence = await startEvidenceServer({
    database: evidenceDatabase,
    databaseUrl: stack.databaseUrl,
    logger: createLogger({ service: "evidence-test", level: "silent" }),
    artifactRoot: await mkdtemp(join(tmpdir(), "packrun-interop-")),
    signingKey: loadSigningKey(generateSigningKeyPem("ecdsa-p256")),
  });
  await stack.addExecutor({
    evidenceUrl: evidence.url,
    executorId: "executor@interop",
    serve: false,
  });
  const credentials = grpc.credentials.createInsecure();
  const Executor = loadStockService("packrun/executor/v1/executor.proto", [
    "packrun",
    "executor",
    "v1",
    "ExecutorService",
  ]);
  const Evidence = loadStockService("packrun/evidence/v1/evidence.proto", [
    "packrun",
    "evidence",
    "v1",
    "EvidenceService",
  ]);
  executorClient = new Executor(
    new URL(stack.executor.url).host,
    credentials,
  ) as unknown as AnyClient;
  evidenceClient = new Evidence(new URL(evidence.url).host, credentials) as unknown as AnyClient;
  clients.push(executorClient, evidenceClient);
});

afterAll(async () => {
  for (const client of clients) client.close();
  await stack.close();
  await evidence.close();
  await evidenceDatabase.close();
});

const manifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: interop, version: 1.0.0}
spec:
  approvals: [{id: go}]
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {script: 'echo hello; echo data > out.txt'}, artifacts: [{name: out, path: out.txt}]}
    - id: gate
      gate: {approval: {id: go}}
`;

test("grpc.health.v1 answers SERVING on the executor and the evidence service", async () => {
  const Health = loadStockService("grpc/health/v1/health.proto", [
    "grpc",
    "health",
    "v1",
    "Health",
  ]);
  for (const url of [stack.executor.url, evidence.url]) {
    const client = new Health(
      new URL(url).host,
      grpc.credentials.createInsecure(),
    ) as unknown as AnyClient;
    clients.push(client);
    const { response } = await unary(client, "check", { service: "" });
    assert.equal(response?.status, "SERVING");
  }
});

test("every ExecutorService and EvidenceService RPC is callable from grpc-js", async () => {
  // ExecutorService
  const submitted = await unary(executorClient, "submitRun", {
    tenant: "acme",
    pack: { manifest },
    submittedBy: "grpc-js",
    priority: 1,
  });
  assert.equal(submitted.error, undefined, submitted.error?.details ?? "");
  const run = submitted.response?.run as { id: string; planHash: string };
  let state = "";
  for (let i = 0; i < 200 && state !== "RUN_STATE_AWAITING_APPROVAL"; i++) {
    state = String(
      field(
        (await unary(executorClient, "getRun", { tenant: "acme", runId: run.id })).response,
        "run",
        "state",
      ),
    );
    if (state !== "RUN_STATE_AWAITING_APPROVAL") await sleep(50);
  }
  assert.equal(state, "RUN_STATE_AWAITING_APPROVAL");
  const listed = await unary(executorClient, "listRuns", {
    tenant: "acme",
    states: ["RUN_STATE_AWAITING_APPROVAL"],
    pageSize: 10,
  });
  assert.deepEqual(
    field<{ id: string }[]>(listed.response, "runs").map((each) => each.id),
    [run.id],
  );
  const claims = (subject: string, planHash: string) => ({
    subject,
    tenant: "acme",
    scopes: ["packs.approve"],
    runId: run.id,
    gateId: "go",
    planHash,
    tokenId: `jti:${subject}`,
  });
  const forged = await unary(executorClient, "decideApproval", {
    tenant: "acme",
    runId: run.id,
    approve: true,
    token: claims("eve", "sha256:0"),
  });
  assert.equal(forged.error?.code, grpc.status.PERMISSION_DENIED);
  const refusal = await unary(executorClient, "recordApprovalRefusal", {
    tenant: "acme",
    runId: run.id,
    approvalId: "go",
    approver: "eve",
    code: "PERMISSION_DENIED",
    reason: "the token lacks the gate's grant",
  });
  assert.equal(refusal.response?.recorded, true, refusal.error?.details ?? "");
  const statistics = await unary(executorClient, "getRunStatistics", {});
  assert.equal(statistics.error, undefined, statistics.error?.details ?? "");
  assert.deepEqual(
    field<{ state: string; count: string }[]>(statistics.response, "runsByState").find(
      (each) => each.state === "RUN_STATE_AWAITING_APPROVAL",
    )?.count,
    "1",
  );
  assert.equal(field<unknown[]>(statistics.response, "stepAttemptDurations", "buckets").length, 15);
  assert.equal(field(statistics.response, "stepAttemptDurations", "count"), "1");
  assert.equal(field(statistics.response, "queueAvailable"), true);
  const decided = await unary(executorClient, "decideApproval", {
    tenant: "acme",
    runId: run.id,
    approvalId: "go",
    approve: true,
    token: claims("alice", run.planHash),
  });
  assert.equal(decided.response?.recorded, true, decided.error?.details ?? "");
  const watched = await serverStream(executorClient, "watchRun", { tenant: "acme", runId: run.id });
  assert.equal(field(watched.at(-1), "run", "state"), "RUN_STATE_SUCCEEDED");
  const health = await unary(executorClient, "getWorkerHealth", {});
  assert.ok(field<unknown[]>(health.response, "workers").length >= 1);
  const other = await unary(executorClient, "submitRun", {
    tenant: "acme",
    pack: { manifest },
    submittedBy: "grpc-js",
  });
  const cancelled = await unary(executorClient, "cancelRun", {
    tenant: "acme",
    runId: field<string>(other.response, "run", "id"),
    reason: "interop",
  });
  assert.equal(field(cancelled.response, "run", "state"), "RUN_STATE_CANCELLED");

  // EvidenceService: wait until the run is finalised (events shipped, attestation signed).
  let attestation: Record<string, unknown> | undefined;
  for (let i = 0; i < 200 && attestation === undefined; i++) {
    attestation = (await unary(evidenceClient, "getAttestation", { tenant: "acme", runId: run.id }))
      .response;
    if (attestation === undefined) await sleep(100);
  }
  assert.match(String(field(attestation, "attestation", "envelopeJson")), /in-toto/);
  const events = await unary(evidenceClient, "listEvents", {
    tenant: "acme",
    runId: run.id,
    pageSize: 1000,
  });
  const sequences = field<{ sequence: string }[]>(events.response, "events").map((event) =>
    Number(event.sequence),
  );
  assert.deepEqual(
    sequences,
    sequences.map((_, index) => index + 1),
  );
  assert.equal(
    field<{ type: string }[]>(events.response, "events").filter(
      (event) => event.type === "gate.approval_refused",
    ).length,
    2,
    "the forged approval and the gateway's refusal are in the run's trail",
  );
  const replayed = await serverStream(evidenceClient, "subscribeEvents", {
    tenant: "acme",
    runId: run.id,
  });
  assert.equal(replayed.length, sequences.length);
  const artifacts = await unary(evidenceClient, "listArtifacts", { tenant: "acme", runId: run.id });
  const [artifact] = field<{ digest: string; name: string }[]>(artifacts.response, "artifacts");
  assert.equal(artifact?.name, "out");
  const content = await serverStream(evidenceClient, "getArtifact", {
    tenant: "acme",
    runId: run.id,
    digest: artifact?.digest,
  });
  assert.equal(Buffer.concat(content.map((part) => part.chunk as Buffer)).toString(), "data\n");
  const bundle = await serverStream(evidenceClient, "getBundle", { tenant: "acme", runId: run.id });
  assert.ok(Buffer.concat(bundle.map((part) => part.chunk as Buffer)).length > 100);
  const keys = await unary(evidenceClient, "listVerificationKeys", {});
  assert.equal(field<{ algorithm: string }[]>(keys.response, "keys")[0]?.algorithm, "ecdsa-p256");
  // Finalisation is idempotent: a retry returns the stored attestation.
  const again = await unary(evidenceClient, "finalizeRun", {
    tenant: "acme",
    runId: run.id,
    runRecord: {},
    planJson: "{}",
  });
  assert.equal(again.response?.created, false, again.error?.details ?? "");

  // Client and bidi streams.
  const put = await new Promise<{ error?: grpc.ServiceError; response?: Record<string, unknown> }>(
    (resolve) => {
      const call = (
        evidenceClient.putArtifact as (callback: Callback) => grpc.ClientWritableStream<object>
      ).call(evidenceClient, (error, response) => resolve(error ? { error } : { response }));
      call.write({
        header: {
          tenant: "acme",
          runId: run.id,
          stepId: "hello",
          name: "extra",
          type: "file",
          sourcePath: "extra.txt",
        },
      });
      call.write({ chunk: Buffer.from("more") });
      call.end();
    },
  );
  // The run has finished and been attested: the store takes no more artifacts for it.
  assert.equal(
    put.error?.code,
    grpc.status.FAILED_PRECONDITION,
    JSON.stringify(put.response ?? put.error?.details),
  );
  const acks = await new Promise<Record<string, unknown>[]>((resolve, reject) => {
    const call = (
      evidenceClient.ingestEvents as () => grpc.ClientDuplexStream<object, Record<string, unknown>>
    ).call(evidenceClient);
    const received: Record<string, unknown>[] = [];
    call.on("data", (ack) => received.push(ack));
    call.on("end", () => resolve(received));
    call.on("error", reject);
    call.write({
      event: {
        tenant: "acme",
        runId: "interop-run",
        idempotencyKey: "interop-1",
        type: "log.stdout",
        message: "from grpc-js",
        level: "EVENT_LEVEL_INFO",
      },
    });
    call.end();
  });
  assert.deepEqual(
    acks.map((ack) => [ack.idempotencyKey, ack.sequence]),
    [["interop-1", "1"]],
  );
});

/** A server stream opened with a grpc-js deadline: how it ended ("end" or the status code). */
function streamOutcome(
  client: AnyClient,
  method: string,
  request: object,
  deadlineMs: number,
): Promise<string> {
  return new Promise((resolve) => {
    const stream = (
      client[method] as (
        request: object,
        options: grpc.CallOptions,
      ) => grpc.ClientReadableStream<unknown>
    ).call(client, request, { deadline: Date.now() + deadlineMs });
    stream.on("data", () => undefined);
    stream.on("end", () => resolve("end"));
    stream.on("error", (error: grpc.ServiceError) => resolve(grpc.status[error.code]));
  });
}

/** The grpc-status the server itself sends when a raw HTTP/2 call carries `grpc-timeout`. */
function serverStatus(url: string, path: string, body: Uint8Array, timeout: string) {
  return new Promise<string>((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": timeout,
    });
    let status = "";
    stream.on("response", (headers) => {
      status = String(headers["grpc-status"] ?? status);
    });
    stream.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"] ?? status);
    });
    stream.on("data", () => undefined);
    stream.on("close", () => {
      session.close();
      resolve(status);
    });
    const envelope = Buffer.alloc(5 + body.length);
    envelope.writeUInt32BE(body.length, 1);
    envelope.set(body, 5);
    stream.end(envelope);
  });
}

test("a deadline on WatchRun or SubscribeEvents of a live run ends DEADLINE_EXCEEDED, never as a finished stream", async () => {
  const submitted = await unary(executorClient, "submitRun", {
    tenant: "acme",
    pack: { manifest },
    submittedBy: "grpc-js-deadline",
    priority: 1,
  });
  assert.equal(submitted.error, undefined, submitted.error?.details ?? "");
  const runId = field<string>(submitted.response, "run", "id");
  const request = { tenant: "acme", runId };
  assert.equal(await streamOutcome(executorClient, "watchRun", request, 300), "DEADLINE_EXCEEDED");
  assert.equal(
    await streamOutcome(evidenceClient, "subscribeEvents", request, 300),
    "DEADLINE_EXCEEDED",
  );
  // What the servers send themselves, before any client-side timer: status 4, not 0.
  assert.equal(
    await serverStatus(
      stack.executor.url,
      "/packrun.executor.v1.ExecutorService/WatchRun",
      toBinary(WatchRunRequestSchema, create(WatchRunRequestSchema, request)),
      "300m",
    ),
    "4",
  );
  assert.equal(
    await serverStatus(
      evidence.url,
      "/packrun.evidence.v1.EvidenceService/SubscribeEvents",
      toBinary(SubscribeEventsRequestSchema, create(SubscribeEventsRequestSchema, request)),
      "300m",
    ),
    "4",
  );
  // A unary call whose deadline has already passed is not answered with data.
  assert.equal(
    await serverStatus(
      stack.executor.url,
      "/packrun.executor.v1.ExecutorService/GetRun",
      toBinary(GetRunRequestSchema, create(GetRunRequestSchema, request)),
      "0n",
    ),
    "4",
  );
});

test("buf curl lists every method of the executor and evidence services through server reflection", async () => {
  const expected = {
    [stack.executor.url]: [
      "packrun.executor.v1.ExecutorService/WatchRun",
      "grpc.health.v1.Health/Check",
    ],
    [evidence.url]: [
      "packrun.evidence.v1.EvidenceService/SubscribeEvents",
      "grpc.health.v1.Health/Watch",
    ],
  };
  for (const [url, methods] of Object.entries(expected)) {
    const { stdout } = await run(
      "buf",
      ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", url],
      { timeout: 30_000 },
    );
    const listed = stdout.trim().split("\n");
    for (const method of methods) assert.ok(listed.includes(method), `${url}: ${method}`);
  }
  // A call described by reflection alone: request and response types (Timestamp, Struct and
  // all) come from the server's descriptors.
  const { stdout } = await run(
    "buf",
    [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      JSON.stringify({ tenant: "acme", pageSize: 1 }),
      `${stack.executor.url}/packrun.executor.v1.ExecutorService/ListRuns`,
    ],
    { timeout: 30_000 },
  );
  const listed = JSON.parse(stdout) as { runs?: { id: string; createdAt?: string }[] };
  assert.equal(listed.runs?.length, 1);
  assert.match(listed.runs?.[0]?.createdAt ?? "", /^\d{4}-\d{2}-\d{2}T/);
});

test("offline approvals over grpc-js: export a signed request, import the approver's response once", async () => {
  const approverKey = loadSigningKey(generateSigningKeyPem("ed25519"));
  const offline = await stack.addExecutor({
    evidenceUrl: evidence.url,
    executorId: "executor@interop-offline",
    work: false,
    approverKeys: {
      keys: new Map([["acme", [{ approver: "alice", groups: [], key: approverKey }]]]),
    },
  });
  const client = new (loadStockService("packrun/executor/v1/executor.proto", [
    "packrun",
    "executor",
    "v1",
    "ExecutorService",
  ]))(new URL(offline.url).host, grpc.credentials.createInsecure()) as unknown as AnyClient;
  clients.push(client);
  const submitted = await unary(client, "submitRun", { tenant: "acme", pack: { manifest } });
  const runId = field<string>(submitted.response, "run", "id");
  let state = "";
  for (let i = 0; i < 200 && state !== "RUN_STATE_AWAITING_APPROVAL"; i++) {
    state = String(
      field((await unary(client, "getRun", { tenant: "acme", runId })).response, "run", "state"),
    );
    if (state !== "RUN_STATE_AWAITING_APPROVAL") await sleep(50);
  }
  assert.equal(state, "RUN_STATE_AWAITING_APPROVAL");
  const exported = await unary(client, "exportApprovalRequest", {
    tenant: "acme",
    runId,
    gate: "gate",
    ttlSeconds: 600,
    requestedBy: "grpc-js",
  });
  assert.equal(exported.error, undefined, exported.error?.details ?? "");
  // The executor without an evidence service cannot sign requests: UNAVAILABLE, not a crash.
  const unsigned = await unary(executorClient, "exportApprovalRequest", {
    tenant: "acme",
    runId,
    gate: "gate",
  });
  assert.equal(unsigned.error?.code, grpc.status.UNAVAILABLE, unsigned.error?.details ?? "");
  const request = parseApprovalRequest(field<string>(exported.response, "envelopeJson"));
  assert.ok(request.ok);
  assert.equal(request.value.requestId, field(exported.response, "requestId"));
  const response = signApprovalResponse(request, { approve: true, comment: "ok" }, approverKey);
  const imported = await unary(client, "importApprovalResponse", {
    tenant: "acme",
    envelopeJson: response,
    importedBy: "grpc-js",
  });
  assert.equal(imported.error, undefined, imported.error?.details ?? "");
  assert.equal(imported.response?.approver, "alice");
  assert.equal(imported.response?.recorded, true);
  const replay = await unary(client, "importApprovalResponse", {
    tenant: "acme",
    envelopeJson: response,
  });
  assert.equal(replay.error?.code, grpc.status.ALREADY_EXISTS, replay.error?.details ?? "");
  const stranger = signApprovalResponse(
    request,
    { approve: true, comment: "" },
    loadSigningKey(generateSigningKeyPem("ecdsa-p256")),
  );
  const unknown = await unary(client, "importApprovalResponse", {
    tenant: "acme",
    envelopeJson: stranger,
  });
  assert.equal(unknown.error?.code, grpc.status.PERMISSION_DENIED, unknown.error?.details ?? "");
  const junk = await unary(client, "importApprovalResponse", {
    tenant: "acme",
    envelopeJson: "{}",
  });
  assert.equal(junk.error?.code, grpc.status.INVALID_ARGUMENT, junk.error?.details ?? "");
  const missing = await unary(client, "exportApprovalRequest", {
    tenant: "acme",
    runId,
    gate: "nope",
  });
  assert.equal(missing.error?.code, grpc.status.FAILED_PRECONDITION, missing.error?.details ?? "");
});
