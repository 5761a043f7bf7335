import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { type PlannerServer, startPlannerServer } from "@packrun/planner";
import { ExecutorService, type Run, RunState } from "@packrun/proto/executor/v1";
import {
  createTestDatabase,
  createTestRedis,
  type TestDatabase,
  type TestRedis,
} from "@packrun/testing";
import { Redis } from "ioredis";
import { createBullmqWorkQueue } from "../bullmq-work-queue.ts";
import { type Executor, type ExecutorOptions, startExecutor } from "../executor-server.ts";
import { executeStep } from "../runtime/index.ts";
import { createRedisSecretVault } from "../secret-vault.ts";
import type { WorkQueue } from "../work-queue.ts";

/** A planner and an executor on real Postgres and Redis, for integration tests. */
export interface ExecutorStack {
  readonly database: Database;
  readonly databaseUrl: string;
  readonly redis: TestRedis;
  readonly queueName: string;
  readonly plannerUrl: string;
  readonly executor: Executor;
  readonly queue: WorkQueue;
  readonly workRoot: string;
  readonly secretsKey: Buffer;
  readonly client: ReturnType<typeof createClient<typeof ExecutorService>>;
  /** Starts another executor (worker) process part in this process on the same database and queue. */
  addExecutor(overrides?: Partial<ExecutorOptions>): Promise<Executor>;
  /** Submits an inline manifest and returns the run id. */
  submit(
    manifest: string,
    options?: {
      inputs?: Record<string, unknown>;
      secrets?: Record<string, string>;
      priority?: number;
      tenant?: string;
    },
  ): Promise<string>;
  /** Polls until the run is terminal (or `until` holds), failing after `timeoutMs`. */
  waitFor(
    runId: string,
    until?: (run: Run) => boolean,
    options?: { timeoutMs?: number; tenant?: string },
  ): Promise<Run>;
  close(): Promise<void>;
}

const terminal = new Set([RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]);

/** Starts an {@link ExecutorStack}; `options` tune the first executor. */
export async function startExecutorStack(
  options: Partial<ExecutorOptions> = {},
): Promise<ExecutorStack> {
  const testDatabase: TestDatabase = await createTestDatabase("executor");
  const logger = createLogger({
    service: "executor-test",
    level: process.env.PACKRUN_TEST_LOG ?? "silent",
  });
  const plannerDatabase = createPostgresDatabase({ url: testDatabase.url, schema: "planner" });
  const planner: PlannerServer = await startPlannerServer({ database: plannerDatabase, logger });
  const database = createPostgresDatabase({
    url: testDatabase.url,
    schema: "executor",
    maxConnections: 20,
  });
  const redis = await createTestRedis("executor");
  const queueName = `steps-${redis.keyPrefix.replace(/[^A-Za-z0-9]/g, "")}`;
  const workRoot = await mkdtemp(join(tmpdir(), "packrun-executor-"));
  const secretsKey = Buffer.alloc(32, 7);
  const vaultRedis = new Redis(redis.url);
  const executors: Executor[] = [];
  const queues: WorkQueue[] = [];
  const newQueue = () => {
    const queue = createBullmqWorkQueue({
      redisUrl: redis.url,
      name: queueName,
      prefix: redis.keyPrefix.slice(0, -1),
    });
    queues.push(queue);
    return queue;
  };
  const vault = createRedisSecretVault({
    redis: vaultRedis,
    key: secretsKey,
    keyPrefix: `${redis.keyPrefix}secrets:`,
  });
  const addExecutor = async (overrides: Partial<ExecutorOptions> = {}) => {
    const executor = await startExecutor({
      database,
      queue: newQueue(),
      vault,
      logger,
      plannerUrl: planner.url,
      runStep: executeStep,
      workRoot,
      reconcileIntervalMs: 200,
      requeueAfterMs: 1500,
      worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 4 },
      ...overrides,
    });
    executors.push(executor);
    return executor;
  };
  const executor = await addExecutor(options);
  const sessions = new Http2SessionManager(executor.url);
  const client = createClient(
    ExecutorService,
    createGrpcTransport({ baseUrl: executor.url, sessionManager: sessions }),
  );
  return {
    database,
    databaseUrl: testDatabase.url,
    redis,
    queueName,
    plannerUrl: planner.url,
    executor,
    queue: queues[0] as WorkQueue,
    workRoot,
    secretsKey,
    client,
    addExecutor,
    async submit(manifest, submitOptions = {}) {
      const response = await client.submitRun({
        tenant: submitOptions.tenant ?? "acme",
        pack: { source: { case: "manifest", value: manifest } },
        inputs: (submitOptions.inputs ?? {}) as never,
        secrets: submitOptions.secrets ?? {},
        priority: submitOptions.priority ?? 0,
        submittedBy: "test",
      });
      return response.run?.id ?? "";
    },
    async waitFor(runId, until, waitOptions = {}) {
      const deadline = Date.now() + (waitOptions.timeoutMs ?? 30_000);
      let last: Run | undefined;
      while (Date.now() < deadline) {
        last = (await client.getRun({ tenant: waitOptions.tenant ?? "acme", runId })).run;
        if (
          last !== undefined &&
          (until === undefined
            ? terminal.has(last.state) && !last.steps.some((step) => step.state === 2)
            : until(last))
        )
          return last;
        await sleep(50);
      }
      throw new Error(
        `run ${runId} did not reach the expected state in time; last: ${JSON.stringify(last?.steps.map((step) => [step.id, step.state, step.reason]))} run state ${last?.state} ${last?.reason}`,
      );
    },
    async close() {
      sessions.abort();
      for (const each of executors.reverse()) await each.close(2000).catch(() => {});
      for (const queue of queues) await queue.close().catch(() => {});
      await planner.close();
      await database.close();
      await plannerDatabase.close();
      vaultRedis.disconnect();
      await redis.cleanup();
      await testDatabase.drop();
      await rm(workRoot, { recursive: true, force: true });
    },
  };
}
