#!/usr/bin/env node
/**
 * Executor process entry: `node services/executor/src/main.ts`. Configured by environment (see
 * executor-config.ts); PACKRUN_EXECUTOR_ROLE picks what it does: `all` (RPCs and a worker),
 * `api` (RPCs only) or `worker` (steps only). Every role runs the reconciler. SIGINT or SIGTERM
 * drains it: no new claims, running steps get the grace period, the rest are handed back; then
 * it exits 0. A configuration error exits 2.
 */
import { createPostgresDatabase } from "@packrun/db";
import { isPackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { serviceSecurityFromConfig, stopOnSignals } from "@packrun/rpc-server";
import { initTelemetry } from "@packrun/telemetry";
import { Redis } from "ioredis";
import { loadExecutorConfig } from "./executor-config.ts";
import { type Executor, executorSchema, startExecutor } from "./rpc/executor-server.ts";
import { executeStep, probeRuntimes, reapOrphans } from "./runtime/index.ts";
import { createRedisSecretVault } from "./secrets/secret-vault.ts";
import { createBullmqWorkQueue } from "./worker/bullmq-work-queue.ts";
import { defaultStepLimits } from "./worker/step-worker.ts";

let config: ReturnType<typeof loadExecutorConfig>;
try {
  config = loadExecutorConfig();
} catch (error) {
  // Plain stderr: the log level is part of what failed to load. Messages name variables, never values.
  process.stderr.write(`executor: ${isPackrunError(error) ? error.message : String(error)}\n`);
  process.exit(2);
}

const logger = createLogger({ service: "executor", level: config.logLevel });
const stopTelemetry = initTelemetry({ serviceName: "packrun-executor", logger });
const works = config.role !== "api";
const database = createPostgresDatabase({
  url: config.databaseUrl,
  schema: executorSchema,
  applicationName: `packrun-executor-${config.role}`,
  maxConnections: Math.max(10, (works ? config.concurrency : 0) * 2 + 6),
});
const queue = createBullmqWorkQueue({
  redisUrl: config.redisUrl,
  name: config.queueName,
  prefix: config.queuePrefix,
});
const vaultRedis = new Redis(config.redisUrl);
vaultRedis.on("error", (error) => logger.warn({ err: error }, "secret vault connection error"));

async function release(): Promise<void> {
  await queue.close().catch(() => {});
  vaultRedis.disconnect();
  await database.close().catch(() => {});
}

let executor: Executor;
try {
  const security = await serviceSecurityFromConfig(config.rpc, config.auth, logger);
  if (works) {
    const runtimes = await probeRuntimes();
    logger.info({ runtimes: runtimes.details }, "step runtimes probed");
    // A stable worker id may be restarting after a crash: kill what the previous run left.
    if (config.workerId !== undefined) {
      const reaped = await reapOrphans(config.workerId);
      if (reaped > 0) logger.warn({ reaped }, "killed leftovers of a previous run of this worker");
    }
  }
  executor = await startExecutor({
    ...(security === undefined ? {} : { security }),
    database,
    queue,
    vault: createRedisSecretVault({
      redis: vaultRedis,
      key: config.secretsKey,
      keyPrefix: `${config.queuePrefix}:secrets:`,
    }),
    logger,
    plannerUrl: config.plannerUrl,
    runStep: executeStep,
    reapOrphans,
    workRoot: config.workRoot,
    serve: config.role !== "worker",
    work: works,
    port: config.port,
    host: config.host,
    ...(config.metricsPort === undefined
      ? {}
      : { metrics: { port: config.metricsPort, host: config.host } }),
    worker: {
      concurrency: config.concurrency,
      leaseMs: config.leaseMs,
      tenantConcurrency: config.tenantConcurrency,
      killGraceMs: config.killGraceMs,
      ...(config.workerId === undefined ? {} : { workerId: config.workerId }),
      limits: {
        ...defaultStepLimits,
        ...(config.stepMemoryBytes === undefined ? {} : { memoryBytes: config.stepMemoryBytes }),
        ...(config.stepPids === undefined ? {} : { pids: config.stepPids }),
        ...(config.stepDiskBytes === undefined ? {} : { diskBytes: config.stepDiskBytes }),
        maxArtifactBytes: config.maxArtifactBytes,
      },
    },
    ...(config.evidenceUrl === undefined ? {} : { evidenceUrl: config.evidenceUrl }),
    ...(config.approverKeysFile === undefined
      ? {}
      : { approverKeys: { file: config.approverKeysFile } }),
    changes: { databaseUrl: config.databaseUrl },
    admission: { perSubjectRuns: config.userConcurrency },
    timekeeper: {
      intervalMs: config.timekeeperIntervalMs,
      missedGraceMs: config.scheduleMissedGraceMs,
    },
  });
} catch (error) {
  logger.fatal({ err: error }, "executor failed to start");
  await release();
  process.exit(1);
}
logger.info(
  {
    role: config.role,
    url: executor.url,
    metricsUrl: executor.metricsUrl,
    workerId: executor.worker?.id,
    concurrency: works ? config.concurrency : 0,
  },
  "executor ready",
);

stopOnSignals({
  logger,
  service: "executor",
  context: { graceMs: config.graceMs },
  async close() {
    await executor.close(config.graceMs);
    await release();
    await stopTelemetry();
    logger.info("executor stopped");
  },
});
