/**
 * A worker-only executor in a process of its own, for fault and scale tests: kill -9 of a
 * worker, SIGTERM drains, several worker processes sharing one database and queue. Started by
 * `ExecutorStack.spawnWorker` (and the system fault tests, test/faults) with its settings as
 * JSON in PACKRUN_TEST_WORKER. With an evidence URL it also ships the outbox and finalises runs.
 *
 * stdout carries one JSON line per event: `{"event":"ready","workerId":...,"pid":...}` once it
 * takes work, `{"event":"draining"}` on SIGTERM/SIGINT, `{"event":"stopped"}` before it exits 0.
 * Logs (level PACKRUN_TEST_LOG, default silent) go to stderr.
 */
import { createPostgresDatabase } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { Redis } from "ioredis";
import { startExecutor } from "../rpc/executor-server.ts";
import { executeStep, reapOrphans } from "../runtime/index.ts";
import { createRedisSecretVault } from "../secrets/secret-vault.ts";
import { createBullmqWorkQueue } from "../worker/bullmq-work-queue.ts";

/** What {@link ExecutorStack.spawnWorker} hands the process. */
export interface WorkerProcessConfig {
  databaseUrl: string;
  redisUrl: string;
  queueName: string;
  queuePrefix: string;
  vaultPrefix: string;
  /** Base64 of the 32-byte secrets key. */
  secretsKey: string;
  plannerUrl: string;
  /** Where events are shipped; none: this process leaves them in the outbox. */
  evidenceUrl?: string;
  workRoot: string;
  workerId: string;
  leaseMs: number;
  concurrency: number;
  tenantConcurrency: number;
  killGraceMs: number;
  /** Drain grace period on SIGTERM. */
  graceMs: number;
  reconcileIntervalMs: number;
  requeueAfterMs: number;
}

const config = JSON.parse(process.env.PACKRUN_TEST_WORKER ?? "{}") as WorkerProcessConfig;
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);

const logger = createLogger({
  service: "executor-test-worker",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
  destination: process.stderr,
});
const database = createPostgresDatabase({
  url: config.databaseUrl,
  schema: "executor",
  maxConnections: config.concurrency * 2 + 4,
  applicationName: `packrun-test-${config.workerId}`,
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
  ...(config.evidenceUrl === undefined
    ? {}
    : { evidenceUrl: config.evidenceUrl, executorId: "executor@test" }),
  runStep: executeStep,
  reapOrphans,
  workRoot: config.workRoot,
  serve: false,
  reconcileIntervalMs: config.reconcileIntervalMs,
  requeueAfterMs: config.requeueAfterMs,
  worker: {
    workerId: config.workerId,
    leaseMs: config.leaseMs,
    concurrency: config.concurrency,
    tenantConcurrency: config.tenantConcurrency,
    killGraceMs: config.killGraceMs,
  },
});
say({ event: "ready", workerId: config.workerId, pid: process.pid });

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  say({ event: "draining" });
  try {
    await executor.close(config.graceMs);
    await queue.close();
    vaultRedis.disconnect();
    await database.close();
    say({ event: "stopped" });
    process.exit(0);
  } catch (error) {
    process.stderr.write(`worker ${config.workerId} failed to stop: ${String(error)}\n`);
    process.exit(1);
  }
}
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
