/**
 * An executor (worker + evidence sink, no RPCs) in a process of its own, for fault tests that
 * kill or partition it mid-run: like services/executor/src/testing/worker-process.ts, plus an
 * optional evidence URL (this process then also ships the outbox and finalises runs) and its own
 * database and Redis URLs (e.g. through a fault proxy). Settings as JSON in
 * PACKRUN_TEST_EXECUTOR; prints `{"event":"ready",...}` on stdout once it takes work.
 */
import { createPostgresDatabase } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { Redis } from "ioredis";
import { createBullmqWorkQueue } from "../../../services/executor/src/bullmq-work-queue.ts";
import { startExecutor } from "../../../services/executor/src/executor-server.ts";
import { executeStep, reapOrphans } from "../../../services/executor/src/runtime/index.ts";
import { createRedisSecretVault } from "../../../services/executor/src/secret-vault.ts";

export interface ExecutorProcessConfig {
  databaseUrl: string;
  redisUrl: string;
  queueName: string;
  queuePrefix: string;
  vaultPrefix: string;
  secretsKey: string;
  plannerUrl: string;
  /** Where events are shipped; none: this process leaves them in the outbox. */
  evidenceUrl?: string;
  workRoot: string;
  workerId: string;
  leaseMs: number;
}

const config = JSON.parse(process.env.PACKRUN_TEST_EXECUTOR ?? "{}") as ExecutorProcessConfig;
const logger = createLogger({
  service: "executor-test-process",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
  destination: process.stderr,
});
const database = createPostgresDatabase({
  url: config.databaseUrl,
  schema: "executor",
  maxConnections: 12,
});
const queue = createBullmqWorkQueue({
  redisUrl: config.redisUrl,
  name: config.queueName,
  prefix: config.queuePrefix,
});
const vaultRedis = new Redis(config.redisUrl);
const executor = await startExecutor({
  database,
  queue,
  vault: createRedisSecretVault({
    redis: vaultRedis,
    key: Buffer.from(config.secretsKey, "base64"),
    keyPrefix: config.vaultPrefix,
  }),
  logger,
  plannerUrl: config.plannerUrl,
  ...(config.evidenceUrl === undefined ? {} : { evidenceUrl: config.evidenceUrl }),
  executorId: "executor@fault-test",
  runStep: executeStep,
  reapOrphans,
  workRoot: config.workRoot,
  serve: false,
  reconcileIntervalMs: 200,
  requeueAfterMs: 1500,
  worker: { workerId: config.workerId, leaseMs: config.leaseMs, concurrency: 4, killGraceMs: 1000 },
});
process.stdout.write(`${JSON.stringify({ event: "ready", pid: process.pid })}\n`);
const stop = async () => {
  await executor.close(5000);
  await queue.close();
  vaultRedis.disconnect();
  await database.close();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
