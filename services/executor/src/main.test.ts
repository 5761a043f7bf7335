import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { type PlannerServer, startPlannerServer } from "@packrun/planner";
import { ExecutorService, RunState } from "@packrun/proto/executor/v1";
import { Health, HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";
import {
  createTestDatabase,
  createTestRedis,
  type TestDatabase,
  type TestRedis,
} from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { outboxEventsSql } from "./store/run-events.ts";
import { eventually } from "./testing/processes.ts";

const mainPath = fileURLToPath(new URL("./main.ts", import.meta.url));
const secretsKey = Buffer.alloc(32, 3).toString("base64");
const secretValue = "main-test-secret-value-42";
let testDatabase: TestDatabase;
let redis: TestRedis;
let planner: PlannerServer;
let plannerDatabase: Database;
let executorDatabase: Database;
let workRoot: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  testDatabase = await createTestDatabase("executor_main");
  redis = await createTestRedis("executor-main");
  plannerDatabase = createPostgresDatabase({ url: testDatabase.url, schema: "planner" });
  planner = await startPlannerServer({
    database: plannerDatabase,
    logger: createLogger({ service: "planner-test", level: "silent" }),
  });
  executorDatabase = createPostgresDatabase({ url: testDatabase.url, schema: "executor" });
  workRoot = await mkdtemp(join(tmpdir(), "packrun-executor-main-"));
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all([...children].map((child) => once(child, "exit")));
  await executorDatabase?.close();
  await planner?.close();
  await plannerDatabase?.close();
  await redis?.cleanup();
  await testDatabase?.drop();
  await rm(workRoot, { recursive: true, force: true });
});

/** What every healthy process here gets: this test's database, Redis key space and planner. */
function baseEnv(): Record<string, string> {
  return {
    DATABASE_URL: testDatabase.url,
    REDIS_URL: redis.url,
    PACKRUN_PLANNER_URL: planner.url,
    PACKRUN_SECRETS_KEY: secretsKey,
    PACKRUN_EXECUTOR_PORT: "0",
    PACKRUN_EXECUTOR_QUEUE_PREFIX: redis.keyPrefix.slice(0, -1),
    PACKRUN_EXECUTOR_WORK_ROOT: workRoot,
    PACKRUN_EXECUTOR_LEASE_MS: "3000",
    // The in-process planner here is a cleartext test server.
    PACKRUN_RPC_INSECURE_NO_AUTH: "true",
    PACKRUN_LOG_LEVEL: "info",
  };
}

/** Starts the executor process with exactly `env` (plus PATH), collecting its output. */
function startExecutorProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, [mainPath], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let stderr = "";
  let stdout = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const lines: Record<string, unknown>[] = [];
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      stdout += `${line}\n`;
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (entry.msg === "executor ready") resolve(entry);
    });
    child.once("exit", (code) => reject(new Error(`executor exited (${code}): ${stderr}`)));
  });
  ready.catch(() => {});
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, ready, lines, exited, stderr: () => stderr, output: () => stdout + stderr };
}

const manifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: main-test, version: 1.0.0}
spec:
  secrets: [{name: token}]
  steps:
    - id: check
      run: {uses: builtin:shell, with: {script: 'test "$T" = "${secretValue}" && echo "token=$T" | tee -a "$PACKRUN_OUTPUT"', env: {T: "{{ secrets.token }}"}}}
    - id: slow
      run: {uses: builtin:shell, with: {argv: [sleep, "1.5"]}}
`;

async function stepState(runId: string, stepId: string): Promise<string | undefined> {
  return (
    await executorDatabase.query<{ state: string }>(
      "SELECT state FROM steps WHERE run_id = $1 AND step_id = $2",
      [runId, stepId],
    )
  ).rows[0]?.state;
}

test("role all: serves, runs steps with secrets masked, drains on SIGTERM and exits 0", async () => {
  const executor = startExecutorProcess({ ...baseEnv(), PACKRUN_EXECUTOR_GRACE_MS: "20000" });
  const ready = await executor.ready;
  const url = String(ready.url);
  assert.equal(ready.role, "all");
  assert.match(String(ready.workerId), /.+/);
  const transport = createGrpcTransport({ baseUrl: url });
  const health = await createClient(Health, transport).check({
    service: ExecutorService.typeName,
  });
  assert.equal(health.status, HealthCheckResponse_ServingStatus.SERVING);

  const client = createClient(ExecutorService, transport);
  const submitted = await client.submitRun({
    tenant: "acme",
    pack: { source: { case: "manifest", value: manifest } },
    secrets: { token: secretValue },
    submittedBy: "main-test",
  });
  const runId = submitted.run?.id ?? "";
  await eventually(
    "the slow step to run",
    async () => (await stepState(runId, "slow")) === "running",
    {
      timeoutMs: 60_000,
    },
  );
  const workers = await client.getWorkerHealth({});
  assert.ok(workers.workers.some((worker) => worker.workerId === ready.workerId));

  // SIGTERM while a step runs: it may finish (1.5 s, grace 20 s), then the process exits 0.
  executor.child.kill("SIGTERM");
  const [code] = await executor.exited;
  assert.equal(code, 0, executor.stderr());
  assert.ok(executor.lines.some((line) => line.msg === "executor shutting down"));
  const run = (
    await executorDatabase.query<{ state: string; outputs: unknown }>(
      "SELECT r.state, s.outputs FROM runs r JOIN steps s ON s.run_id = r.id AND s.step_id = 'check' WHERE r.id = $1",
      [runId],
    )
  ).rows[0];
  assert.equal(run?.state, "succeeded");
  assert.deepEqual(run?.outputs, { token: "***" }, "secret values are masked in outputs");
  const events = (
    await executorDatabase.query<{
      event: { type: string; message: string; lines?: { type: string; message: string }[] };
    }>(`SELECT event FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 ORDER BY id, n`, [runId])
  ).rows.flatMap(({ event }) => event.lines ?? [event]); // a chunk's lines, or an event
  assert.ok(events.some((event) => event.type === "log.stdout" && event.message === "token=***"));
  assert.ok(!JSON.stringify(events).includes(secretValue), "no secret value in any event");
  assert.ok(!executor.output().includes(secretValue), "no secret value in the process's output");
});

test("roles api and worker: one process serves, another runs the steps", async () => {
  const api = startExecutorProcess({ ...baseEnv(), PACKRUN_EXECUTOR_ROLE: "api" });
  const worker = startExecutorProcess({
    ...baseEnv(),
    PACKRUN_EXECUTOR_ROLE: "worker",
    PACKRUN_EXECUTOR_WORKER_ID: "main-test-worker",
  });
  const [apiReady, workerReady] = await Promise.all([api.ready, worker.ready]);
  assert.equal(apiReady.workerId, undefined, "the api role runs no worker");
  assert.equal(workerReady.url, "", "the worker role serves nothing");
  assert.equal(workerReady.workerId, "main-test-worker");

  const client = createClient(
    ExecutorService,
    createGrpcTransport({ baseUrl: String(apiReady.url) }),
  );
  const submitted = await client.submitRun({
    tenant: "acme",
    pack: { source: { case: "manifest", value: manifest } },
    secrets: { token: secretValue },
    submittedBy: "main-test",
  });
  const runId = submitted.run?.id ?? "";
  const run = await eventually(
    "the run to finish",
    async () => {
      const current = (await client.getRun({ tenant: "acme", runId })).run;
      return current?.state === RunState.SUCCEEDED || current?.state === RunState.FAILED
        ? current
        : undefined;
    },
    { timeoutMs: 60_000 },
  );
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  assert.ok(
    run.steps.every((step) => step.attempts.every((a) => a.workerId === "main-test-worker")),
  );

  api.child.kill("SIGTERM");
  worker.child.kill("SIGTERM");
  const [[apiCode], [workerCode]] = await Promise.all([api.exited, worker.exited]);
  assert.equal(apiCode, 0, api.stderr());
  assert.equal(workerCode, 0, worker.stderr());
});

test("bad configuration exits 2 with a message naming the variables, and no secrets", async () => {
  const missingKey = startExecutorProcess({
    DATABASE_URL: "postgres://localhost/db",
    REDIS_URL: "redis://localhost",
  });
  const [code] = await missingKey.exited;
  assert.equal(code, 2);
  assert.match(missingKey.stderr(), /set PACKRUN_SECRETS_KEY to base64 of 32 random bytes/);

  const badKey = "aHVudGVyMg==";
  const leaky = startExecutorProcess({
    DATABASE_URL: "mysql://user:hunter2@db/executor",
    REDIS_URL: "redis://localhost",
    PACKRUN_SECRETS_KEY: badKey,
    PACKRUN_EXECUTOR_ROLE: "everything",
  });
  const [again] = await leaky.exited;
  assert.equal(again, 2);
  const stderr = leaky.stderr();
  assert.match(stderr, /DATABASE_URL \(databaseUrl\)/);
  assert.match(stderr, /PACKRUN_SECRETS_KEY \(secretsKey\): must be base64 of exactly 32 bytes/);
  assert.match(stderr, /PACKRUN_EXECUTOR_ROLE \(role\)/);
  assert.ok(!stderr.includes("hunter2"), stderr);
  assert.ok(!stderr.includes(badKey), stderr);
});
