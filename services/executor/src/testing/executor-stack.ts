import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
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
import { type Executor, type ExecutorOptions, startExecutor } from "../rpc/executor-server.ts";
import { executeStep, reapOrphans } from "../runtime/index.ts";
import { releaseWorkdirMounts } from "../runtime/workdir-limit.ts";
import { createRedisSecretVault, type SecretVault } from "../secrets/secret-vault.ts";
import { createBullmqWorkQueue } from "../worker/bullmq-work-queue.ts";
import type { WorkQueue } from "../worker/work-queue.ts";
import type { WorkerProcessConfig } from "./worker-process.ts";

const workerScript = new URL("./worker-process.ts", import.meta.url).pathname;

/** A worker-only executor running in a process of its own (see worker-process.ts). */
export interface WorkerProcess {
  readonly workerId: string;
  readonly child: ChildProcess;
  /** Resolves once the process exited; its exit code (null when killed) and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Events the process printed on stdout so far (`ready`, `draining`, `stopped`). */
  readonly events: string[];
  stderr(): string;
}

/** Settings of {@link ExecutorStack.spawnWorker}. */
export type WorkerProcessOptions = Partial<
  Pick<
    WorkerProcessConfig,
    "workerId" | "leaseMs" | "concurrency" | "tenantConcurrency" | "killGraceMs" | "graceMs"
  >
>;

/** A complete Task Pack manifest named `name` whose `spec:` body is `spec` (indented YAML). */
export function packManifest(name: string, spec: string): string {
  return `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: ${name}, version: 1.0.0}\nspec:\n${spec}`;
}

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
  readonly vault: SecretVault;
  readonly client: ReturnType<typeof createClient<typeof ExecutorService>>;
  /** Starts another executor (worker) process part in this process on the same database and queue. */
  addExecutor(overrides?: Partial<ExecutorOptions>): Promise<Executor>;
  /**
   * Starts a worker-only executor in a separate Node process on the same database, queue and
   * secrets key; resolves once it takes work. `close` kills what is still running.
   */
  spawnWorker(options?: WorkerProcessOptions): Promise<WorkerProcess>;
  /**
   * Deletes every Redis key of this stack (queue and secret vault), as a Redis restart without
   * persistence would; other tests' keys on the shared server are untouched.
   */
  flushRedis(): Promise<number>;
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

const terminal = new Set([
  RunState.SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELLED,
  RunState.TIMED_OUT,
]);

/** Starts an {@link ExecutorStack}; `options` tune the first executor. */
export async function startExecutorStack(
  options: Partial<ExecutorOptions> = {},
  hooks: {
    /** Wraps the executors' database handle (e.g. to count statements); tests query the raw one. */
    wrapDatabase?: (database: Database) => Database;
  } = {},
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
  const workerProcesses: WorkerProcess[] = [];
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
  const executorDatabase = hooks.wrapDatabase?.(database) ?? database;
  const addExecutor = async (overrides: Partial<ExecutorOptions> = {}) => {
    const started = await startExecutor({
      database: executorDatabase,
      queue: newQueue(),
      vault,
      logger,
      plannerUrl: planner.url,
      runStep: executeStep,
      workRoot,
      reconcileIntervalMs: 200,
      requeueAfterMs: 1500,
      worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 4 },
      workerLostAfterMs: 10_000,
      reapOrphans,
      ...overrides,
    });
    // Tests close some executors themselves; the stack closes the rest, each only once.
    let closing: Promise<void> | undefined;
    const executor: Executor = {
      ...started,
      close: (graceMs?: number) => {
        closing ??= started.close(graceMs);
        return closing;
      },
    };
    executors.push(executor);
    return executor;
  };
  const spawnWorker = async (workerOptions: WorkerProcessOptions = {}) => {
    const config: WorkerProcessConfig = {
      databaseUrl: testDatabase.url,
      redisUrl: redis.url,
      queueName,
      queuePrefix: redis.keyPrefix.slice(0, -1),
      vaultPrefix: `${redis.keyPrefix}secrets:`,
      secretsKey: secretsKey.toString("base64"),
      plannerUrl: planner.url,
      workRoot,
      workerId: `proc-${randomBytes(4).toString("hex")}`,
      leaseMs: 3000,
      concurrency: 4,
      tenantConcurrency: 0,
      killGraceMs: 1000,
      graceMs: 10_000,
      reconcileIntervalMs: 200,
      requeueAfterMs: 1500,
      ...workerOptions,
    };
    const child = spawn(process.execPath, [workerScript], {
      env: { ...process.env, PACKRUN_TEST_WORKER: JSON.stringify(config) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const events: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        const event = (JSON.parse(line) as { event: string }).event;
        events.push(event);
        if (event === "ready") resolve();
      });
      void exited.then(({ code, signal }) =>
        reject(
          new Error(`worker process exited (${code ?? signal}) before it was ready: ${stderr}`),
        ),
      );
    });
    const worker: WorkerProcess = {
      workerId: config.workerId,
      child,
      exited,
      events,
      stderr: () => stderr,
    };
    workerProcesses.push(worker);
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      await ready;
    } finally {
      clearTimeout(timer);
    }
    return worker;
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
    vault,
    client,
    addExecutor,
    spawnWorker,
    async flushRedis() {
      const admin = new Redis(redis.url);
      let deleted = 0;
      try {
        let cursor = "0";
        do {
          const [next, keys] = await admin.scan(
            cursor,
            "MATCH",
            `${redis.keyPrefix.replace(/[*?[\]\\]/g, "\\$&")}*`,
            "COUNT",
            1000,
          );
          if (keys.length > 0) deleted += await admin.del(...keys);
          cursor = next;
        } while (cursor !== "0");
      } finally {
        admin.disconnect();
      }
      return deleted;
    },
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
      for (const worker of workerProcesses) {
        if (worker.child.exitCode === null && worker.child.signalCode === null)
          worker.child.kill("SIGKILL");
        await worker.exited;
      }
      for (const each of executors.reverse()) await each.close(2000).catch(() => {});
      for (const queue of queues) await queue.close().catch(() => {});
      await planner.close();
      await database.close();
      await plannerDatabase.close();
      vaultRedis.disconnect();
      await redis.cleanup();
      await testDatabase.drop();
      // Workdir mounts of workers killed mid-step (the fault tests) would keep rm from working.
      await releaseWorkdirMounts((mount) => mount.mountPoint.startsWith(`${workRoot}/`));
      await rm(workRoot, { recursive: true, force: true });
    },
  };
}
