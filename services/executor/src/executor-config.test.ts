import assert from "node:assert/strict";
import { isPackrunError } from "@packrun/errors";
import { test } from "vitest";
import { defaultExecutorPort, loadExecutorConfig, loadExecutorLimits } from "./executor-config.ts";

const key = Buffer.alloc(32, 9).toString("base64");
const minimal = {
  DATABASE_URL: "postgres://db/packrun",
  REDIS_URL: "redis://cache:6379",
  PACKRUN_SECRETS_KEY: key,
  PACKRUN_TLS_CA: "/tls/ca.pem",
  PACKRUN_TLS_CERT: "/tls/executor.pem",
  PACKRUN_TLS_KEY: "/tls/executor-key.pem",
};

function configError(env: NodeJS.ProcessEnv): string {
  try {
    loadExecutorConfig(env);
  } catch (error) {
    assert.ok(isPackrunError(error));
    assert.equal(error.code, "CONFIG_INVALID");
    return error.message;
  }
  assert.fail("the configuration was accepted");
}

test("defaults: all roles, port 7002 on loopback, planner on its default port", () => {
  const config = loadExecutorConfig(minimal);
  assert.equal(config.role, "all");
  assert.equal(config.port, defaultExecutorPort);
  assert.equal(config.port, 7002);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.plannerUrl, "http://127.0.0.1:7001");
  assert.equal(config.concurrency, 4);
  assert.equal(config.leaseMs, 15_000);
  assert.equal(config.tenantConcurrency, 0);
  assert.deepEqual(config.secretsKey, Buffer.alloc(32, 9));
  assert.equal(config.evidenceUrl, undefined);
  assert.equal(config.stepMemoryBytes, undefined, "no step memory limit unless configured");
  assert.equal(config.stepPids, undefined);
  assert.equal(config.maxArtifactBytes, 4 * 1024 ** 3, "artifacts up to 4 GiB by default");
});

test("step resource limits are configurable and validated", () => {
  const config = loadExecutorConfig({
    ...minimal,
    PACKRUN_EXECUTOR_STEP_MEMORY_BYTES: String(512 * 1024 * 1024),
    PACKRUN_EXECUTOR_STEP_PIDS: "128",
    PACKRUN_EXECUTOR_MAX_ARTIFACT_BYTES: "1048576",
  });
  assert.equal(config.maxArtifactBytes, 1024 * 1024);
  assert.equal(config.stepMemoryBytes, 512 * 1024 * 1024);
  assert.equal(config.stepPids, 128);
  assert.match(
    configError({ ...minimal, PACKRUN_EXECUTOR_STEP_MEMORY_BYTES: "1000" }),
    /PACKRUN_EXECUTOR_STEP_MEMORY_BYTES/,
  );
  assert.match(
    configError({ ...minimal, PACKRUN_EXECUTOR_STEP_PIDS: "0" }),
    /PACKRUN_EXECUTOR_STEP_PIDS/,
  );
});

test("executor-specific variables override the shared ones; numbers are coerced", () => {
  const config = loadExecutorConfig({
    ...minimal,
    PACKRUN_EXECUTOR_DATABASE_URL: "postgresql://other/executor",
    PACKRUN_EXECUTOR_REDIS_URL: "redis://queue:6380",
    PACKRUN_EXECUTOR_ROLE: "worker",
    PACKRUN_EXECUTOR_CONCURRENCY: "16",
    PACKRUN_EXECUTOR_LEASE_MS: "5000",
    PACKRUN_EXECUTOR_TENANT_CONCURRENCY: "3",
    PACKRUN_EXECUTOR_WORK_ROOT: "/var/lib/packrun",
  });
  assert.equal(config.databaseUrl, "postgresql://other/executor");
  assert.equal(config.redisUrl, "redis://queue:6380");
  assert.equal(config.role, "worker");
  assert.equal(config.concurrency, 16);
  assert.equal(config.leaseMs, 5000);
  assert.equal(config.tenantConcurrency, 3);
  assert.equal(config.workRoot, "/var/lib/packrun");
});

test("a missing or malformed secrets key is named, and its value never printed", () => {
  assert.match(
    configError({ DATABASE_URL: minimal.DATABASE_URL, REDIS_URL: minimal.REDIS_URL }),
    /secretsKey: is required: set PACKRUN_SECRETS_KEY to base64 of 32 random bytes/,
  );
  const short = Buffer.from("sixteen byte key").toString("base64");
  const message = configError({ ...minimal, PACKRUN_SECRETS_KEY: short });
  assert.match(message, /PACKRUN_SECRETS_KEY \(secretsKey\): must be base64 of exactly 32 bytes/);
  assert.match(message, /decodes to 16 bytes/);
  assert.ok(!message.includes(short), message);
  const notBase64 = "correct horse battery staple!";
  const again = configError({ ...minimal, PACKRUN_SECRETS_KEY: notBase64 });
  assert.match(again, /is not base64/);
  assert.ok(!again.includes(notBase64), again);
});

test("every bad variable is reported at once", () => {
  const message = configError({
    ...minimal,
    PACKRUN_EXECUTOR_ROLE: "janitor",
    PACKRUN_EXECUTOR_PORT: "http",
    PACKRUN_EXECUTOR_CONCURRENCY: "0",
    PACKRUN_EXECUTOR_LEASE_MS: "10",
    PACKRUN_EXECUTOR_WORK_ROOT: "relative/dir",
    PACKRUN_PLANNER_URL: "planner:7001",
  });
  for (const name of [
    "PACKRUN_EXECUTOR_ROLE (role)",
    "PACKRUN_EXECUTOR_PORT (port)",
    "PACKRUN_EXECUTOR_CONCURRENCY (concurrency)",
    "PACKRUN_EXECUTOR_LEASE_MS (leaseMs)",
    "PACKRUN_EXECUTOR_WORK_ROOT (workRoot)",
    "PACKRUN_PLANNER_URL (plannerUrl)",
  ])
    assert.ok(message.includes(name), `${name} missing from:\n${message}`);
});

test("issue 17 settings: per-user runs in flight, the timekeeper, the missed grace", () => {
  const defaults = loadExecutorConfig(minimal);
  assert.equal(defaults.userConcurrency, 0, "no per-user limit unless configured");
  assert.equal(defaults.timekeeperIntervalMs, 1000);
  assert.equal(defaults.scheduleMissedGraceMs, 60_000);
  const set = loadExecutorConfig({
    ...minimal,
    PACKRUN_EXECUTOR_USER_CONCURRENCY: "3",
    PACKRUN_EXECUTOR_TIMEKEEPER_INTERVAL_MS: "250",
    PACKRUN_EXECUTOR_SCHEDULE_MISSED_GRACE_MS: "5000",
  });
  assert.equal(set.userConcurrency, 3);
  assert.equal(set.timekeeperIntervalMs, 250);
  assert.equal(set.scheduleMissedGraceMs, 5000);
  assert.match(
    configError({ ...minimal, PACKRUN_EXECUTOR_USER_CONCURRENCY: "-1" }),
    /PACKRUN_EXECUTOR_USER_CONCURRENCY/,
  );
});

test("the embedded default reads the same limits, and only those, from the same variables", () => {
  // No database, Redis or secrets key needed: only the limits are read.
  assert.deepEqual(loadExecutorLimits({}), {
    concurrency: 4,
    tenantConcurrency: 0,
    userConcurrency: 0,
  });
  assert.deepEqual(
    loadExecutorLimits({
      PACKRUN_EXECUTOR_CONCURRENCY: "8",
      PACKRUN_EXECUTOR_TENANT_CONCURRENCY: "16",
      PACKRUN_EXECUTOR_USER_CONCURRENCY: "2",
      PACKRUN_EXECUTOR_STEP_MEMORY_BYTES: "1073741824",
      PACKRUN_EXECUTOR_STEP_PIDS: "256",
    }),
    {
      concurrency: 8,
      tenantConcurrency: 16,
      userConcurrency: 2,
      stepMemoryBytes: 1073741824,
      stepPids: 256,
    },
  );
  assert.throws(
    () => loadExecutorLimits({ PACKRUN_EXECUTOR_CONCURRENCY: "many" }),
    (error: unknown) =>
      isPackrunError(error) &&
      error.code === "CONFIG_INVALID" &&
      /PACKRUN_EXECUTOR_CONCURRENCY/.test(error.message),
  );
});
