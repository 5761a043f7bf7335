import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";
import { PlannerService } from "@packrun/proto/planner/v1";
import { type DevCertificates, ensureDevCertificates, serviceTransport } from "@packrun/rpc-server";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";

const mainPath = fileURLToPath(new URL("./main.ts", import.meta.url));
let testDatabase: TestDatabase | undefined;
const children = new Set<ChildProcess>();

let certificates: DevCertificates;
let tlsDir: string;

beforeAll(async () => {
  testDatabase = await createTestDatabase("planner_main");
  tlsDir = await mkdtemp(join(tmpdir(), "packrun-planner-main-"));
  certificates = await ensureDevCertificates(join(tlsDir, "tls"));
});

/** The planner's identity from the test CA, as the process reads it. */
function tlsEnv(): Record<string, string> {
  return {
    PACKRUN_TLS_CA: certificates.caFile,
    PACKRUN_TLS_CERT: join(certificates.dir, "planner.pem"),
    PACKRUN_TLS_KEY: join(certificates.dir, "planner-key.pem"),
  };
}
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await testDatabase?.drop();
  await rm(tlsDir, { recursive: true, force: true });
});

/** Starts the planner process with exactly `env` (plus PATH), collecting its output. */
function startPlanner(env: Record<string, string>) {
  const child = spawn(process.execPath, [mainPath], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const lines: Record<string, unknown>[] = [];
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (entry.msg === "planner ready") resolve(String(entry.url));
    });
    child.once("exit", (code) => reject(new Error(`planner exited (${code}): ${stderr}`)));
  });
  ready.catch(() => {});
  return { child, ready, lines, stderr: () => stderr };
}

test("the process serves over TLS, answers health checks to anyone, RPCs only to packrun's services, and stops cleanly on SIGTERM", async () => {
  assert.ok(testDatabase);
  const planner = startPlanner({
    PACKRUN_PLANNER_DATABASE_URL: testDatabase.url,
    PACKRUN_PLANNER_PORT: "0",
    PACKRUN_LOG_LEVEL: "info",
    ...tlsEnv(),
  });
  const url = await planner.ready;
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  // A caller that trusts the CA but presents no certificate: health is open, the rest is not.
  const withoutCert = createGrpcTransport({
    baseUrl: url,
    nodeOptions: { ca: certificates.services.planner.ca },
  });
  const health = await createClient(Health, withoutCert).check({
    service: PlannerService.typeName,
  });
  assert.equal(health.status, HealthCheckResponse_ServingStatus.SERVING);
  await assert.rejects(
    createClient(PlannerService, withoutCert).validateManifest({ manifest: "kind: TaskPack" }),
    (error: unknown) => ConnectError.from(error).code === Code.Unauthenticated,
  );
  const gateway = serviceTransport(url, certificates.services.gateway);
  const validated = await createClient(PlannerService, gateway.transport).validateManifest({
    manifest: "kind: TaskPack",
  });
  gateway.sessions.abort();
  assert.equal(validated.valid, false);
  assert.ok(planner.lines.some((line) => line.msg === "migrations applied"));

  const exited = once(planner.child, "exit");
  planner.child.kill("SIGTERM");
  const [code] = await exited;
  assert.equal(code, 0, planner.stderr());
  assert.ok(planner.lines.some((line) => line.msg === "planner shutting down"));
});

test("without TLS settings the process refuses to start (fail closed), naming the variables", async () => {
  assert.ok(testDatabase);
  const planner = startPlanner({ PACKRUN_PLANNER_DATABASE_URL: testDatabase.url });
  const [code] = await once(planner.child, "exit");
  assert.equal(code, 2);
  assert.match(planner.stderr(), /PACKRUN_TLS_CA, PACKRUN_TLS_CERT and PACKRUN_TLS_KEY/);
  assert.match(planner.stderr(), /PACKRUN_RPC_INSECURE_NO_AUTH=true on a development machine only/);
});

test("bad configuration exits 2 with a message naming the variables, and no secrets", async () => {
  const planner = startPlanner({ PACKRUN_PLANNER_PORT: "not-a-port" });
  const [code] = await once(planner.child, "exit");
  assert.equal(code, 2);
  assert.match(planner.stderr(), /set PACKRUN_PLANNER_DATABASE_URL or DATABASE_URL/);
  assert.match(planner.stderr(), /PACKRUN_PLANNER_PORT \(port\)/);

  const withPassword = startPlanner({ DATABASE_URL: "mysql://user:hunter2@db/planner" });
  const [again] = await once(withPassword.child, "exit");
  assert.equal(again, 2);
  assert.ok(!withPassword.stderr().includes("hunter2"), withPassword.stderr());
});
