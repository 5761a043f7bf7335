/**
 * Issue 19, "Authenticated internal RPC": the red team's step called the internal gRPC services
 * without credentials, read another tenant's run, approved its gate as forged approvers,
 * cancelled its run and injected a forged `gate.approved` into its signed attestation.
 *
 * Now every service speaks TLS with a certificate of the deployment's internal CA, and each RPC
 * authorises its caller: by client certificate (one identity per service: only the executor
 * appends events; control-plane RPCs only packrun's own services), or, on the public methods,
 * by a bearer token with the gateway's issuers, scopes and tenancy. Tested here with a stock
 * client (@grpc/grpc-js with @grpc/proto-loader, no generated code) against the real services of
 * the embedded stack, and from inside a real step.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ensureDevCertificates, type ServiceIdentity } from "@packrun/rpc-server";
import { stockLoaderOptions } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { runtimeSupport } from "../../services/executor/src/runtime/support.ts";
import {
  eventsWhen,
  gatedManifest,
  manifest,
  type RunJson,
  runAwaitingGate,
  submitRun,
  useSecurityStack,
  waitForRun,
} from "./support/stack.ts";

type Callback = (error: grpc.ServiceError | null, response: unknown) => void;
type Unary = (request: object, metadata: grpc.Metadata, callback: Callback) => void;
type AnyClient = grpc.Client & Record<string, unknown>;

const packages = {
  executor: grpc.loadPackageDefinition(
    protoLoader.loadSync("packrun/executor/v1/executor.proto", stockLoaderOptions),
  ) as unknown as {
    packrun: { executor: { v1: { ExecutorService: grpc.ServiceClientConstructor } } };
  },
  evidence: grpc.loadPackageDefinition(
    protoLoader.loadSync("packrun/evidence/v1/evidence.proto", stockLoaderOptions),
  ) as unknown as {
    packrun: { evidence: { v1: { EvidenceService: grpc.ServiceClientConstructor } } };
  },
  planner: grpc.loadPackageDefinition(
    protoLoader.loadSync("packrun/planner/v1/planner.proto", stockLoaderOptions),
  ) as unknown as {
    packrun: { planner: { v1: { PlannerService: grpc.ServiceClientConstructor } } };
  },
  health: grpc.loadPackageDefinition(
    protoLoader.loadSync("grpc/health/v1/health.proto", stockLoaderOptions),
  ) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } },
};

const ctx = useSecurityStack();
const clients: grpc.Client[] = [];
afterAll(() => {
  for (const client of clients) client.close();
});

const tlsFile = (name: string) => readFileSync(join(ctx.stack.home, "tls", name));

/** Server-authenticated TLS only (what an organisation's internal caller of the public API has). */
function noCert(): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(tlsFile("ca.pem"));
}

/** Mutual TLS as one of packrun's services, with its certificate from the stack's CA. */
function asService(identity: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    tlsFile("ca.pem"),
    tlsFile(`${identity}-key.pem`),
    tlsFile(`${identity}.pem`),
  );
}

function client(
  service: "executor" | "evidence" | "planner",
  credentials: grpc.ChannelCredentials,
): AnyClient {
  const url = {
    executor: ctx.stack.executorUrl,
    evidence: ctx.stack.evidenceUrl,
    planner: ctx.stack.plannerUrl,
  }[service];
  const constructors = {
    executor: packages.executor.packrun.executor.v1.ExecutorService,
    evidence: packages.evidence.packrun.evidence.v1.EvidenceService,
    planner: packages.planner.packrun.planner.v1.PlannerService,
  };
  const made = new constructors[service](
    new URL(url).host,
    credentials,
    channelOptions,
  ) as unknown as AnyClient;
  clients.push(made);
  return made;
}

// grpc-js would send the IP address as TLS server name, which Node refuses; the certificates
// name localhost too (and 127.0.0.1, which Node checks against the name given).
const channelOptions = { "grpc.ssl_target_name_override": "localhost" };

function bearer(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** A unary call: its response, or the status it failed with. */
function call(
  target: AnyClient,
  method: string,
  request: object,
  metadata = new grpc.Metadata(),
): Promise<{ response?: Record<string, unknown>; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    (target[method] as Unary).call(target, request, metadata, (error, response) =>
      resolve(error === null ? { response: response as Record<string, unknown> } : { error }),
    );
  });
}

function assertStatus(
  outcome: { error?: grpc.ServiceError },
  code: grpc.status,
  message?: RegExp,
): void {
  assert.ok(outcome.error, `expected ${grpc.status[code]}, the call succeeded`);
  assert.equal(
    outcome.error.code,
    code,
    `expected ${grpc.status[code]}, got ${grpc.status[outcome.error.code]}: ${outcome.error.details}`,
  );
  if (message !== undefined) assert.match(outcome.error.details, message);
}

/** Sends `events` on IngestEvents; the acknowledgements, or the status the stream ended with. */
function ingest(
  target: AnyClient,
  events: object[],
  metadata = new grpc.Metadata(),
): Promise<{ acks: unknown[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const stream = (
      target.ingestEvents as (m: grpc.Metadata) => grpc.ClientDuplexStream<object, unknown>
    ).call(target, metadata);
    const acks: unknown[] = [];
    stream.on("data", (ack) => acks.push(ack));
    stream.on("error", (error: grpc.ServiceError) => resolve({ acks, error }));
    stream.on("end", () => resolve({ acks }));
    for (const event of events) stream.write({ event });
    stream.end();
  });
}

const gated = gatedManifest("internal-rpc-gated", { grants: ["release-managers"] });
const awaitingRun = () => runAwaitingGate(ctx.alice, gated);

function forgedApproval(run: RunJson): object {
  return {
    tenant: "acme",
    runId: run.id,
    idempotencyKey: `forged-${run.id}`,
    time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
    level: "EVENT_LEVEL_INFO",
    type: "gate.approved",
    stepId: "gate",
    message: "approved by mallory",
  };
}

describe("a caller without credentials", () => {
  test("health answers anyone; every other RPC is UNAUTHENTICATED, and a forged approval lands nowhere", async () => {
    const run = await awaitingRun();
    const health = new packages.health.grpc.health.v1.Health(
      new URL(ctx.stack.executorUrl).host,
      noCert(),
      channelOptions,
    ) as unknown as AnyClient;
    clients.push(health);
    const checked = await call(health, "check", { service: "" });
    assert.equal(checked.response?.status, "SERVING");

    const executor = client("executor", noCert());
    const evidence = client("evidence", noCert());
    const forged = await ingest(evidence, [forgedApproval(run)]);
    assert.ok(forged.error, "the forged event stream was accepted");
    assert.equal(forged.error.code, grpc.status.UNAUTHENTICATED, forged.error.details);
    assert.deepEqual(forged.acks, []);
    assertStatus(
      await call(executor, "decideApproval", {
        tenant: "acme",
        runId: run.id,
        approvalId: "release",
        planHash: run.planHash,
        approver: "mallory",
        approve: true,
      }),
      grpc.status.UNAUTHENTICATED,
      /needs a bearer token .* or the client certificate of a packrun service/,
    );
    assertStatus(
      await call(executor, "cancelRun", { tenant: "acme", runId: run.id, requestedBy: "mallory" }),
      grpc.status.UNAUTHENTICATED,
    );
    assertStatus(
      await call(executor, "getRun", { tenant: "acme", runId: run.id }),
      grpc.status.UNAUTHENTICATED,
    );
    assertStatus(
      await call(executor, "recordApprovalRefusal", {
        tenant: "acme",
        runId: run.id,
        approvalId: "release",
        approver: "mallory",
        code: "PERMISSION_DENIED",
        reason: "forged",
      }),
      grpc.status.UNAUTHENTICATED,
      /needs the client certificate of a packrun service/,
    );
    assertStatus(
      await call(evidence, "finalizeRun", { tenant: "acme", runId: run.id }),
      grpc.status.UNAUTHENTICATED,
    );

    // Cleartext gRPC (what the red team's step used) does not even get a session.
    const cleartext = new packages.executor.packrun.executor.v1.ExecutorService(
      new URL(ctx.stack.executorUrl).host,
      grpc.credentials.createInsecure(),
    ) as unknown as AnyClient;
    clients.push(cleartext);
    const plain = await call(cleartext, "getRun", { tenant: "acme", runId: run.id });
    assert.ok(plain.error, "a cleartext call was answered");
    assert.equal(plain.error.code, grpc.status.UNAVAILABLE, plain.error.details);

    // A certificate from another CA with a service's name is no identity at all.
    const foreign = await foreignCertificate("executor");
    const impostor = client(
      "evidence",
      grpc.credentials.createSsl(tlsFile("ca.pem"), foreign.key, foreign.cert),
    );
    const impostorOutcome = await ingest(impostor, [forgedApproval(run)]);
    assert.equal(impostorOutcome.error?.code, grpc.status.UNAUTHENTICATED);

    const still = await waitForRun(ctx.alice, run.id, () => true);
    assert.equal(still.state, "awaiting-approval", JSON.stringify(still));
    assert.equal(still.gates.find((g) => g.stepId === "gate")?.decisions.length, 0);
    const events = await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
      log.some((e) => e.type === "run.awaiting-approval"),
    );
    assert.equal(events.filter((e) => e.type === "gate.approved").length, 0);
    assert.ok(!events.some((e) => e.message.includes("mallory")), JSON.stringify(events));
  });
});

describe("a caller with the wrong service identity", () => {
  test("only the executor appends events; only the gateway decides and records approvals", async () => {
    const run = await awaitingRun();
    for (const identity of ["gateway", "planner", "evidence"]) {
      const outcome = await ingest(client("evidence", asService(identity)), [forgedApproval(run)]);
      assert.equal(outcome.error?.code, grpc.status.PERMISSION_DENIED, identity);
      assert.match(String(outcome.error?.details), new RegExp(`from the ${identity} service`));
    }
    for (const identity of ["planner", "evidence", "executor"]) {
      assertStatus(
        await call(client("executor", asService(identity)), "decideApproval", {
          tenant: "acme",
          runId: run.id,
          approvalId: "release",
          planHash: run.planHash,
          approver: "mallory",
          approve: true,
        }),
        grpc.status.PERMISSION_DENIED,
        new RegExp(`DecideApproval does not accept calls from the ${identity} service`),
      );
    }
    assertStatus(
      await call(client("planner", asService("evidence")), "listPacks", { tenant: "acme" }),
      grpc.status.PERMISSION_DENIED,
    );
    // The gateway's identity is what the gateway itself uses: accepted.
    const read = await call(client("executor", asService("gateway")), "getRun", {
      tenant: "acme",
      runId: run.id,
    });
    assert.equal((read.response?.run as { id?: string } | undefined)?.id, run.id);
    const still = await waitForRun(ctx.alice, run.id, () => true);
    assert.equal(still.gates.find((g) => g.stepId === "gate")?.decisions.length, 0);
  });
});

describe("the public gRPC API with bearer tokens", () => {
  test("a scoped token submits, reads, watches and reads logs in its tenant; its subject is recorded", async () => {
    const token = await ctx.stack.mintToken({
      subject: "svc-deployer",
      scopes: ["packs.run", "packs.read"],
    });
    const executor = client("executor", noCert());
    const submitted = await call(
      executor,
      "submitRun",
      {
        tenant: "",
        pack: {
          manifest: manifest(
            "grpc-public",
            "  steps:\n    - id: hello\n      run: {uses: builtin:noop}\n",
          ),
        },
        submittedBy: "somebody-else",
      },
      bearer(token),
    );
    assert.equal(submitted.error, undefined, String(submitted.error?.details));
    const run = submitted.response?.run as { id: string; tenant: string; submittedBy: string };
    assert.equal(run.tenant, "acme");
    assert.equal(run.submittedBy, "svc-deployer", "the token's subject, not the request's");

    const read = await call(executor, "getRun", { tenant: "acme", runId: run.id }, bearer(token));
    assert.equal((read.response?.run as { id?: string } | undefined)?.id, run.id);

    const watched = await new Promise<unknown>((resolve, reject) => {
      const stream = (
        executor.watchRun as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<unknown>
      ).call(executor, { tenant: "acme", runId: run.id }, bearer(token));
      stream.once("data", (first) => {
        resolve(first);
        stream.cancel();
      });
      stream.once("error", reject);
    });
    assert.equal((watched as { run: { id: string } }).run.id, run.id);

    await waitForRun(ctx.alice, run.id);
    // Events reach the evidence log through the executor's outbox, shortly after.
    await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
      log.some((e) => e.type === "run.succeeded"),
    );
    const logs = await call(
      client("evidence", noCert()),
      "listEvents",
      { tenant: "acme", runId: run.id },
      bearer(token),
    );
    assert.equal(logs.error, undefined, String(logs.error?.details));
    assert.ok(((logs.response?.events ?? []) as unknown[]).length > 0);
  });

  test("a missing token, a wrong-scope token, a foreign-tenant token and a forged one are refused", async () => {
    const run = await awaitingRun();
    const executor = client("executor", noCert());
    assertStatus(
      await call(executor, "getRun", { tenant: "acme", runId: run.id }),
      grpc.status.UNAUTHENTICATED,
    );
    const readOnly = await ctx.stack.mintToken({ scopes: ["packs.read"] });
    assertStatus(
      await call(executor, "cancelRun", { tenant: "acme", runId: run.id }, bearer(readOnly)),
      grpc.status.PERMISSION_DENIED,
      /needs the packs.run scope/,
    );
    const globex = await ctx.stack.mintToken({ tenant: "globex", subject: "mallory" });
    assertStatus(
      await call(executor, "getRun", { tenant: "acme", runId: run.id }, bearer(globex)),
      grpc.status.PERMISSION_DENIED,
      /the token is for tenant globex, not acme/,
    );
    assertStatus(
      await call(executor, "cancelRun", { tenant: "acme", runId: run.id }, bearer(globex)),
      grpc.status.PERMISSION_DENIED,
    );
    // Streams too: watching another tenant's run ends before its first message.
    const watched = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const stream = (
        executor.watchRun as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<unknown>
      ).call(executor, { tenant: "acme", runId: run.id }, bearer(globex));
      stream.once("data", () => {
        stream.cancel();
        resolve(undefined);
      });
      stream.once("error", (error: grpc.ServiceError) => resolve(error));
    });
    assert.equal(watched?.code, grpc.status.PERMISSION_DENIED, String(watched?.details));
    // Without naming a tenant the token's own applies: another tenant's run does not exist there.
    assertStatus(
      await call(executor, "getRun", { tenant: "", runId: run.id }, bearer(globex)),
      grpc.status.NOT_FOUND,
    );
    assertStatus(
      await call(
        client("evidence", noCert()),
        "listEvents",
        { tenant: "acme", runId: run.id },
        bearer(globex),
      ),
      grpc.status.PERMISSION_DENIED,
    );
    const [header, payload] = readOnly.split(".");
    assertStatus(
      await call(
        executor,
        "getRun",
        { tenant: "acme", runId: run.id },
        bearer(`${header}.${payload}.AAAA`),
      ),
      grpc.status.UNAUTHENTICATED,
      /signature/,
    );
    // Every scope still opens no internal method.
    const everything = await ctx.stack.mintToken();
    const injected = await ingest(
      client("evidence", noCert()),
      [forgedApproval(run)],
      bearer(everything),
    );
    assert.equal(injected.error?.code, grpc.status.PERMISSION_DENIED);
    assert.match(String(injected.error?.details), /internal: only packrun's own services/);
    assertStatus(
      await call(executor, "getRunStatistics", {}, bearer(everything)),
      grpc.status.PERMISSION_DENIED,
    );
    const still = await waitForRun(ctx.alice, run.id, () => true);
    assert.equal(still.state, "awaiting-approval");
  });

  test("approving over gRPC takes a token bound to the run, gate and plan, with a granted group, once", async () => {
    const run = await awaitingRun();
    const executor = client("executor", noCert());
    const decide = (token: string, request: object = {}) =>
      call(
        executor,
        "decideApproval",
        {
          tenant: "acme",
          runId: run.id,
          approvalId: "release",
          approve: true,
          approver: "forged",
          ...request,
        },
        bearer(token),
      );
    const unbound = await ctx.stack.mintToken({ subject: "dave", groups: ["release-managers"] });
    assertStatus(
      await decide(unbound),
      grpc.status.PERMISSION_DENIED,
      /bound to the run, gate and plan/,
    );
    const binding = { runId: run.id, gateId: "gate", planHash: run.planHash };
    const ungranted = await ctx.stack.mintToken({
      subject: "erin",
      approval: binding,
      groups: ["devs"],
    });
    assertStatus(await decide(ungranted), grpc.status.PERMISSION_DENIED, /release-managers/);
    const stale = await ctx.stack.mintToken({
      subject: "frank",
      approval: { ...binding, planHash: "0".repeat(64) },
      groups: ["release-managers"],
    });
    assertStatus(
      await decide(stale),
      grpc.status.PERMISSION_DENIED,
      /the approval token is for plan 0+,/,
    );
    const noScope = await ctx.stack.mintToken({
      subject: "grace",
      approval: binding,
      groups: ["release-managers"],
      scopes: ["packs.read"],
    });
    assertStatus(await decide(noScope), grpc.status.PERMISSION_DENIED, /packs.approve/);

    const good = await ctx.stack.mintToken({
      subject: "heidi",
      approval: binding,
      groups: ["release-managers"],
    });
    const approved = await decide(good);
    assert.equal(approved.error, undefined, String(approved.error?.details));
    assert.equal(approved.response?.recorded, true);
    const again = await decide(good);
    assertStatus(again, grpc.status.ALREADY_EXISTS);
    const done = await waitForRun(ctx.alice, run.id);
    assert.equal(done.state, "succeeded");
    const decisions = done.gates.find((g) => g.stepId === "gate")?.decisions ?? [];
    assert.deepEqual(
      decisions.map((d) => d.approver),
      ["heidi"],
      "the token's subject approved, not the request's approver field",
    );
    const events = await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
      log.some((e) => e.type === "run.succeeded"),
    );
    assert.ok(events.filter((e) => e.type === "gate.approval_refused").length >= 3);
  });
});

const support = await runtimeSupport();

describe("from inside a real step", { skip: !support.sandbox }, () => {
  let ports: { executor: string; evidence: string; planner: string };
  beforeAll(() => {
    ports = {
      executor: new URL(ctx.stack.executorUrl).port,
      evidence: new URL(ctx.stack.evidenceUrl).port,
      planner: new URL(ctx.stack.plannerUrl).port,
    };
  });

  test("the services' keys are out of sight and their ports out of reach", async () => {
    const tls = join(ctx.stack.home, "tls");
    // They exist and the worker could read them: only the sandbox keeps the step from them.
    for (const file of ["executor-key.pem", "ca-key.pem", "gateway-key.pem"])
      assert.ok(readFileSync(join(tls, file)).length > 0, file);
    const probe = (target: string) =>
      `exec 3<>/dev/tcp/127.0.0.1/${target} && echo "connected" || echo "connect failed"`;
    const run = await submitRun(ctx.alice, {
      manifest: manifest(
        "internal-rpc-from-step",
        `  steps:
    - id: keys
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'for f in ${tls}/executor-key.pem ${tls}/ca-key.pem ${tls}/gateway-key.pem; do cat "$f" >/dev/null 2>&1 && echo "read $f" || echo unreadable; done; ls ${tls} >/dev/null 2>&1 && echo listed || echo "not there"']}}
    - id: executor
      run: {uses: builtin:shell, with: {argv: [bash, -c, '${probe(ports.executor)}']}}
    - id: evidence
      run: {uses: builtin:shell, with: {argv: [bash, -c, '${probe(ports.evidence)}']}}
    - id: planner
      run: {uses: builtin:shell, with: {argv: [bash, -c, '${probe(ports.planner)}']}}
`,
      ),
    });
    const finished = await waitForRun(ctx.alice, run.id, undefined, 60_000);
    assert.equal(finished.state, "succeeded", JSON.stringify(finished.steps));
    const events = await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
      log.some((e) => e.type === "run.succeeded"),
    );
    const out = (stepId: string) =>
      events.filter((e) => e.type === "log.stdout" && e.stepId === stepId).map((e) => e.message);
    assert.deepEqual(out("keys"), ["unreadable", "unreadable", "unreadable", "not there"]);
    for (const service of ["executor", "evidence", "planner"])
      assert.deepEqual(out(service), ["connect failed"], service);
  });
});

/** A certificate and key with CN=`identity`, from a CA of its own (not the stack's). */
async function foreignCertificate(
  identity: ServiceIdentity,
): Promise<{ cert: Buffer; key: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), "packrun-foreign-ca-"));
  try {
    const foreign = await ensureDevCertificates(join(dir, "tls"));
    const { cert, key } = foreign.services[identity];
    return { cert: Buffer.from(cert), key: Buffer.from(key) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
