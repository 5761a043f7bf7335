/**
 * Starting the fault tests' service processes: evidence-process.ts, and the executor's own test
 * worker process (services/executor/src/testing/worker-process.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import type { ExecutorStack } from "../../../services/executor/src/testing/executor-stack.ts";
import type { WorkerProcessConfig } from "../../../services/executor/src/testing/worker-process.ts";

/** A service process started by a test. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** SIGKILL, and wait until it is gone. */
  kill(): Promise<void>;
}

async function start(script: string, env: Record<string, string>): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [new URL(script, import.meta.url).pathname], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} did not start within 60 s: ${stderr}`));
    }, 60_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const event = JSON.parse(line) as { event: string; url?: string };
      if (event.event === "ready") {
        clearTimeout(timer);
        resolve(event.url ?? "");
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? signal}) before it was ready: ${stderr}`));
    });
  });
  return {
    child,
    url,
    exited,
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** The evidence service on `port`, storing in the stack's database (schema evidence). */
export function startEvidenceProcess(settings: {
  databaseUrl: string;
  port: number;
  artifactRoot: string;
  signingKeyFile: string;
}): Promise<ServiceProcess> {
  return start("./evidence-process.ts", { PACKRUN_TEST_EVIDENCE: JSON.stringify(settings) });
}

/**
 * An executor worker on the stack's database and queue (reached at `databaseUrl` / `redisUrl`
 * when given, e.g. through a fault proxy) that also ships events to `evidenceUrl` when given.
 */
export function startExecutorProcess(
  stack: ExecutorStack,
  settings: {
    evidenceUrl?: string;
    workerId: string;
    leaseMs?: number;
    databaseUrl?: string;
    redisUrl?: string;
  },
): Promise<ServiceProcess> {
  const config: WorkerProcessConfig = {
    databaseUrl: settings.databaseUrl ?? stack.databaseUrl,
    redisUrl: settings.redisUrl ?? stack.redis.url,
    queueName: stack.queueName,
    queuePrefix: stack.redis.keyPrefix.slice(0, -1),
    vaultPrefix: `${stack.redis.keyPrefix}secrets:`,
    secretsKey: stack.secretsKey.toString("base64"),
    plannerUrl: stack.plannerUrl,
    ...(settings.evidenceUrl === undefined ? {} : { evidenceUrl: settings.evidenceUrl }),
    workRoot: stack.workRoot,
    workerId: settings.workerId,
    leaseMs: settings.leaseMs ?? 2000,
    concurrency: 4,
    tenantConcurrency: 0,
    killGraceMs: 1000,
    graceMs: 5000,
    reconcileIntervalMs: 200,
    requeueAfterMs: 1500,
  };
  return start("../../../services/executor/src/testing/worker-process.ts", {
    PACKRUN_TEST_WORKER: JSON.stringify(config),
  });
}
