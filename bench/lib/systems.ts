/**
 * The systems under test, each driven the same way by the workloads: packrun (planner,
 * evidence, executor API and worker processes, started from their production entry points),
 * BullMQ and graphile-worker (worker processes running bench/peer-worker.ts) and the floor
 * runner (the same run and commits, no queue).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, open, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { allScopes, generateLocalSigningKey, mintToken } from "@packrun/auth";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { ExecutorService, type Run, RunState, StepState } from "@packrun/proto/executor/v1";
import { Health, HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";
import { StepKind } from "@packrun/proto/pack/v1";
import {
  type DevCertificates,
  ensureDevCertificates,
  type ServiceIdentity,
  serviceTransport,
} from "@packrun/rpc-server";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { freePort } from "../../scripts/servers.ts";
import {
  BENCH_SCHEMA,
  bullmqJobOptions,
  createRun,
  type RunTimes,
  readRuns,
  type StepJob,
} from "./durable.ts";
import type { Components } from "./meter.ts";
import { mapLimit, nowMs, until } from "./util.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Where the servers are and where systems may keep files. */
export interface BenchEnv {
  /** postgres://…/ without a database name. */
  pgBase: string;
  redisUrl: string;
  tempDir: string;
  /** Components every system shares: postgres and redis process trees. */
  shared: Components;
}

/** What one run does, for every system. */
export interface RunRequest {
  /** argv of each sequential step (one element per step). */
  steps: string[][];
  maxAttempts: number;
  /** packrun: the manifest (and inputs) to submit instead of one built from `steps`. */
  manifest?: string;
  inputs?: Record<string, unknown>;
}

/** A fan-out: one run with `items` parallel steps of `argv`. */
export interface MapRequest {
  items: number;
  argv: string[];
  /** Steps running at once per worker process. */
  concurrency: number;
}

/** The request of the i-th run of a workload (runs that differ, e.g. in which step fails). */
export type RequestFor = (index: number) => RunRequest;

/**
 * Submits `count` runs keeping `window` in flight: each slot submits a run, waits until the
 * system says it finished, records when it learnt that (`noticed`), then submits the next.
 */
async function runClosedLoop(
  system: {
    submit(request: RunRequest): Promise<string>;
    wait(id: string): Promise<void>;
    readonly noticed: Map<string, number>;
  },
  count: number,
  window: number,
  request: RunRequest | RequestFor,
): Promise<string[]> {
  const ids: string[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      for (;;) {
        const index = next++;
        if (index >= count) return;
        const id = await system.submit(requestAt(request, index));
        ids[index] = id;
        await system.wait(id);
        system.noticed.set(id, nowMs());
      }
    }),
  );
  return ids;
}

function requestAt(request: RunRequest | RequestFor, index: number): RunRequest {
  return typeof request === "function" ? request(index) : request;
}

export interface StartOptions {
  workers: number;
  /** Steps at once per worker process. */
  concurrency: number;
  /**
   * Peers only: run each step through the executor's step runtime (isolated as a packrun step of
   * that sandbox mode: bubblewrap, cgroup, network namespace) instead of a bare spawn, so that a
   * comparison with packrun isolates both sides alike. packrun ignores it (its pack decides).
   */
  isolation?: "open" | "sealed";
}

export interface System {
  readonly name: string;
  start(options: StartOptions): Promise<void>;
  stop(): Promise<void>;
  /** Process trees to measure (the shared servers included) and which of them report memory. */
  components(): Components;
  memoryComponents(): string[];
  /** A new, empty namespace for the next repetition (tenant, tables). */
  reset(): Promise<void>;
  /** Keeps `window` runs in flight until `count` ran; resolves their ids in submission order. */
  closedLoop(count: number, window: number, request: RunRequest | RequestFor): Promise<string[]>;
  /** Submits `count` runs at once (`submitters` submissions in flight) and waits for all. */
  burst(
    count: number,
    submitters: number,
    request: RunRequest,
    timeoutMs: number,
  ): Promise<string[]>;
  /** One run fanning out over `items` steps; resolves its id once finished. */
  fanOut(request: MapRequest, timeoutMs: number): Promise<string>;
  /** Timestamps of finished runs (read after the measurement window). */
  results(ids: readonly string[]): Promise<RunTimes[]>;
}

/** A child process with its output in files (or stdout piped for event lines). */
interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly exited: Promise<void>;
  readonly lines: AsyncIterator<string> | undefined;
}

async function startChild(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  logDir: string,
  pipeStdout: boolean,
): Promise<Child> {
  await mkdir(logDir, { recursive: true });
  const out = await open(path.join(logDir, `${name}.log`), "a");
  // BENCH_CPU_PROF=<dir>: every system process writes a CPU profile to <dir>/<name>/ at exit.
  const profile = process.env.BENCH_CPU_PROF
    ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${path.join(process.env.BENCH_CPU_PROF, name)}` }
    : {};
  const child = spawn(process.execPath, [path.join(ROOT, script)], {
    cwd: ROOT,
    env: { ...process.env, ...env, ...profile },
    stdio: ["pipe", pipeStdout ? "pipe" : out.fd, out.fd],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => out.close());
  const lines =
    pipeStdout && child.stdout
      ? createInterface({ input: child.stdout })[Symbol.asyncIterator]()
      : undefined;
  return { name, process: child, exited, lines };
}

async function nextEvent(child: Child, timeoutMs: number): Promise<Record<string, unknown>> {
  if (!child.lines) throw new Error(`${child.name} has no event stream`);
  const timer = sleep(timeoutMs).then(() => {
    throw new Error(`${child.name}: no event within ${timeoutMs} ms (see its log)`);
  });
  const exit = child.exited.then(() => {
    throw new Error(`${child.name} exited (see its log)`);
  });
  const line = await Promise.race([child.lines.next(), timer, exit]);
  if (line.done) throw new Error(`${child.name} closed its output`);
  return JSON.parse(line.value) as Record<string, unknown>;
}

async function stopChildren(children: readonly Child[]): Promise<void> {
  for (const child of children) child.process.kill("SIGTERM");
  await Promise.all(
    children.map(async (child) => {
      const killer = setTimeout(() => child.process.kill("SIGKILL"), 15_000);
      await child.exited;
      clearTimeout(killer);
    }),
  );
}

async function ensureDatabase(pgBase: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: `${pgBase}postgres` });
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `${pgBase}${name}`;
}

/** A packrun run's timestamps from GetRun; map children when the run has a map. */
function runTimes(run: Run, submittedMs: number): RunTimes {
  const ms = (value: Parameters<typeof timestampMs>[0] | undefined) =>
    value === undefined ? Number.NaN : timestampMs(value);
  const children = run.steps.filter((step) => step.parentId !== "");
  const steps = (children.length > 0 ? children : run.steps).filter(
    (step) => step.kind === StepKind.RUN && step.state !== StepState.SKIPPED,
  );
  return {
    id: run.id,
    state: RunState[run.state].toLowerCase(),
    submittedMs,
    finishedMs: ms(run.finishedAt),
    steps: steps.map((step) => ({
      startedMs: ms(step.startedAt),
      finishedMs: ms(step.finishedAt),
      attempts: step.attempts.length,
      successes: step.attempts.filter((attempt) => attempt.state === StepState.SUCCEEDED).length,
    })),
  };
}

/** A manifest running `steps` (argv each) in sequence with `maxAttempts` configured. */
export function sequenceManifest(name: string, steps: string[][], maxAttempts: number): string {
  const body = steps
    .map(
      (argv, i) =>
        `    - id: s${i}\n      run: {uses: builtin:shell, with: {argv: ${JSON.stringify(argv)}}}\n`,
    )
    .join("");
  return `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: ${name}, version: 1.0.0}\nspec:\n  failure:\n    retries: {maxAttempts: ${maxAttempts}, backoffSeconds: 0}\n  steps:\n${body}`;
}

const TERMINAL = new Set([RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]);

/** packrun from its production entry points: planner, evidence, executor API, N workers. */
export class PackrunSystem implements System {
  readonly name = "packrun";
  readonly #env: BenchEnv;
  #services: Child[] = [];
  #workers: Child[] = [];
  #sessions: Http2SessionManager[] = [];
  #databaseUrl = "";
  #tenant = "bench-0";
  #generation = 0;
  #submitted = new Map<string, number>();
  /** When closedLoop learnt that a run finished. */
  readonly noticed = new Map<string, number>();
  /** When the submission of a run returned. */
  readonly accepted = new Map<string, number>();
  executor: Client<typeof ExecutorService> | undefined;
  evidence: Client<typeof EvidenceService> | undefined;
  evidenceUrl = "";
  /** Settings of the worker processes beyond the defaults. */
  workerEnv: NodeJS.ProcessEnv = {};
  /** Start the gateway (REST + SSE) too; set before start(). */
  withGateway = false;
  /** The gateway's base URL and a token for the current tenant, when it runs. */
  gatewayUrl = "";
  gatewayToken = "";
  #signingKey: Awaited<ReturnType<typeof generateLocalSigningKey>> | undefined;

  constructor(env: BenchEnv) {
    this.#env = env;
  }

  get tenant(): string {
    return this.#tenant;
  }

  async start(options: StartOptions): Promise<void> {
    this.#databaseUrl = await ensureDatabase(this.#env.pgBase, "packrun");
    const logs = path.join(this.#env.tempDir, "logs");
    const [plannerPort, evidencePort, executorPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const common = { DATABASE_URL: this.#databaseUrl, REDIS_URL: this.#env.redisUrl };
    // As in production: every service with its own certificate of an internal CA (mutual TLS).
    const tls = await ensureDevCertificates(path.join(this.#env.tempDir, "tls"));
    this.#tls = tls;
    const tlsEnv = (identity: ServiceIdentity) => ({
      PACKRUN_TLS_CA: tls.caFile,
      PACKRUN_TLS_CERT: path.join(tls.dir, `${identity}.pem`),
      PACKRUN_TLS_KEY: path.join(tls.dir, `${identity}-key.pem`),
    });
    const plannerUrl = `http://127.0.0.1:${plannerPort}`;
    this.evidenceUrl = `http://127.0.0.1:${evidencePort}`;
    const executorUrl = `http://127.0.0.1:${executorPort}`;
    const secretsKey = randomBytes(32).toString("base64");
    this.#executorEnv = {
      ...common,
      PACKRUN_PLANNER_URL: plannerUrl,
      PACKRUN_EVIDENCE_URL: this.evidenceUrl,
      PACKRUN_SECRETS_KEY: secretsKey,
      PACKRUN_EXECUTOR_WORK_ROOT: path.join(this.#env.tempDir, "packrun-work"),
      ...tlsEnv("executor"),
    };
    const [planner, evidence] = await Promise.all([
      startChild(
        "planner",
        "services/planner/src/main.ts",
        { ...common, PACKRUN_PLANNER_PORT: String(plannerPort), ...tlsEnv("planner") },
        logs,
        false,
      ),
      startChild(
        "evidence",
        "services/evidence/src/main.ts",
        {
          ...common,
          PACKRUN_EVIDENCE_PORT: String(evidencePort),
          PACKRUN_EVIDENCE_ARTIFACT_ROOT: path.join(this.#env.tempDir, "artifacts"),
          PACKRUN_EVIDENCE_DEV_KEY_PATH: path.join(this.#env.tempDir, "evidence-key.pem"),
          ...tlsEnv("evidence"),
        },
        logs,
        false,
      ),
    ]);
    this.#services = [planner, evidence];
    await Promise.all([
      this.#healthy(plannerUrl, planner),
      this.#healthy(this.evidenceUrl, evidence),
    ]);
    const api = await startChild(
      "executor-api",
      "services/executor/src/main.ts",
      {
        ...this.#executorEnv,
        PACKRUN_EXECUTOR_ROLE: "api",
        PACKRUN_EXECUTOR_PORT: String(executorPort),
      },
      logs,
      false,
    );
    this.#services.push(api);
    await this.#healthy(executorUrl, api);
    if (this.withGateway) await this.#startGateway(plannerUrl, executorUrl, logs);
    // The bench's own client calls as the gateway would (its identity).
    const executor = serviceTransport(executorUrl, tls.services.gateway);
    const evidenceTransport = serviceTransport(this.evidenceUrl, tls.services.gateway);
    this.#sessions = [executor.sessions, evidenceTransport.sessions];
    this.executor = createClient(ExecutorService, executor.transport);
    this.evidence = createClient(EvidenceService, evidenceTransport.transport);
    await this.setWorkers(options);
  }

  #executorEnv: NodeJS.ProcessEnv = {};
  #tls: DevCertificates | undefined;

  /** The gateway process, trusting a fresh local signing key (as the embedded dev mode does). */
  async #startGateway(plannerUrl: string, executorUrl: string, logs: string): Promise<void> {
    this.#signingKey = await generateLocalSigningKey();
    const jwksFile = path.join(this.#env.tempDir, "gateway-jwks.json");
    await writeFile(jwksFile, JSON.stringify(this.#signingKey.jwks));
    const port = await freePort();
    const gateway = await startChild(
      "gateway",
      "services/gateway/src/main.ts",
      {
        PACKRUN_GATEWAY_PORT: String(port),
        PACKRUN_PLANNER_URL: plannerUrl,
        PACKRUN_EXECUTOR_URL: executorUrl,
        PACKRUN_EVIDENCE_URL: this.evidenceUrl,
        PACKRUN_AUTH_JWKS_FILE: jwksFile,
        PACKRUN_AUTH_ISSUER: "packrun-bench",
        PACKRUN_AUTH_AUDIENCE: "packrun",
        PACKRUN_TLS_CA: this.#tls?.caFile ?? "",
        PACKRUN_TLS_CERT: path.join(this.#tls?.dir ?? "", "gateway.pem"),
        PACKRUN_TLS_KEY: path.join(this.#tls?.dir ?? "", "gateway-key.pem"),
        // The bench measures the engine; its own clients are not to be throttled.
        PACKRUN_GATEWAY_RATE_LIMIT_PER_TOKEN: "0",
        PACKRUN_GATEWAY_RATE_LIMIT_PER_TENANT: "0",
      },
      logs,
      false,
    );
    this.#services.push(gateway);
    this.gatewayUrl = `http://127.0.0.1:${port}`;
    await until(
      "the gateway to serve",
      async () => {
        if (gateway.process.exitCode !== null)
          throw new Error("gateway exited at start (see its log)");
        return fetch(`${this.gatewayUrl}/healthz`).then(
          (response) => response.ok,
          () => false,
        );
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    await this.#mintToken();
  }

  async #mintToken(): Promise<void> {
    if (!this.#signingKey) return;
    this.gatewayToken = await mintToken({
      key: this.#signingKey.privateJwk,
      issuer: "packrun-bench",
      audience: "packrun",
      subject: "bench",
      tenant: this.#tenant,
      scopes: allScopes,
      expiresInSeconds: 6 * 3600,
    });
  }

  /** Replaces the worker processes with `workers` new ones of `concurrency` each. */
  async setWorkers(options: StartOptions): Promise<void> {
    await stopChildren(this.#workers);
    this.#workers = [];
    this.#generation++;
    const ids: string[] = [];
    for (let i = 0; i < options.workers; i++) {
      const workerId = `bench-worker-${this.#generation}-${i}`;
      ids.push(workerId);
      this.#workers.push(
        await startChild(
          workerId,
          "services/executor/src/main.ts",
          {
            ...this.#executorEnv,
            ...this.workerEnv,
            PACKRUN_EXECUTOR_ROLE: "worker",
            PACKRUN_EXECUTOR_WORKER_ID: workerId,
            PACKRUN_EXECUTOR_CONCURRENCY: String(options.concurrency),
          },
          path.join(this.#env.tempDir, "logs"),
          false,
        ),
      );
    }
    const client = this.#client();
    await until(
      `${options.workers} packrun workers to report in`,
      async () => {
        for (const worker of this.#workers) {
          if (worker.process.exitCode !== null)
            throw new Error(`${worker.name} exited at start (see its log)`);
        }
        const health = await client.getWorkerHealth({});
        const active = new Set(
          health.workers.filter((w) => w.status === "active").map((w) => w.workerId),
        );
        return ids.every((id) => active.has(id));
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
  }

  async #healthy(baseUrl: string, child: Child): Promise<void> {
    const { sessions, transport } = serviceTransport(baseUrl, this.#tls?.services.gateway);
    const health = createClient(Health, transport);
    try {
      await until(
        `${child.name} to serve`,
        async () => {
          if (child.process.exitCode !== null)
            throw new Error(`${child.name} exited at start (see its log)`);
          try {
            const response = await health.check({ service: "" }, { timeoutMs: 1000 });
            return response.status === HealthCheckResponse_ServingStatus.SERVING;
          } catch {
            return false;
          }
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );
    } finally {
      sessions.abort();
    }
  }

  #client(): Client<typeof ExecutorService> {
    if (!this.executor) throw new Error("packrun is not started");
    return this.executor;
  }

  async stop(): Promise<void> {
    for (const sessions of this.#sessions) sessions.abort();
    await stopChildren(this.#workers);
    await stopChildren([...this.#services].reverse());
    this.#workers = [];
    this.#services = [];
    this.gatewayUrl = "";
  }

  components(): Components {
    const pid = (name: string) =>
      this.#services.filter((c) => c.name === name).map((c) => c.process.pid ?? 0);
    return {
      ...this.#env.shared,
      planner: pid("planner"),
      evidence: pid("evidence"),
      "executor-api": pid("executor-api"),
      ...(this.withGateway ? { gateway: pid("gateway") } : {}),
      worker: this.#workers.map((c) => c.process.pid ?? 0),
    };
  }

  memoryComponents(): string[] {
    return [
      "planner",
      "evidence",
      "executor-api",
      "worker",
      ...(this.withGateway ? ["gateway"] : []),
    ];
  }

  async reset(): Promise<void> {
    this.#tenant = `bench-${randomUUID().slice(0, 8)}`;
    this.#submitted.clear();
    await this.#mintToken();
  }

  /** Submits one run; records the client's submit time. */
  async submit(request: RunRequest, name = "bench"): Promise<string> {
    const manifest = request.manifest ?? sequenceManifest(name, request.steps, request.maxAttempts);
    const submittedMs = nowMs();
    const response = await this.#client().submitRun({
      tenant: this.#tenant,
      pack: { source: { case: "manifest", value: manifest } },
      inputs: (request.inputs ?? {}) as never,
      submittedBy: "bench",
    });
    const id = response.run?.id;
    if (!id) throw new Error("SubmitRun returned no run");
    this.#submitted.set(id, submittedMs);
    this.accepted.set(id, nowMs());
    return id;
  }

  /** Waits for a run through WatchRun (the public way to follow a run). */
  async wait(id: string, timeoutMs = 120_000): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    for await (const change of this.#client().watchRun(
      { tenant: this.#tenant, runId: id },
      { signal },
    )) {
      if (change.run && TERMINAL.has(change.run.state)) return;
    }
  }

  closedLoop(count: number, window: number, request: RunRequest | RequestFor): Promise<string[]> {
    return runClosedLoop(this, count, window, request);
  }

  /** Waits until no run of the current tenant is queued or running (ListRuns, polled). */
  async waitIdle(timeoutMs: number, states = [RunState.QUEUED, RunState.RUNNING]): Promise<void> {
    const client = this.#client();
    await until(
      "packrun runs to finish",
      async () =>
        (await client.listRuns({ tenant: this.#tenant, states, pageSize: 1 })).runs.length === 0,
      { timeoutMs, intervalMs: 100 },
    );
  }

  async burst(
    count: number,
    submitters: number,
    request: RunRequest,
    timeoutMs: number,
  ): Promise<string[]> {
    const ids = await mapLimit(Array.from({ length: count }), submitters, () =>
      this.submit(request),
    );
    await this.waitIdle(timeoutMs);
    return ids;
  }

  async fanOut(request: MapRequest, timeoutMs: number): Promise<string> {
    const manifest = `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: fan-out, version: 1.0.0}\nspec:\n  inputs: [{name: items, type: array}]\n  steps:\n    - id: fan\n      map:\n        items: "{{ inputs.items }}"\n        step:\n          id: one\n          run: {uses: builtin:shell, with: {argv: ${JSON.stringify(request.argv)}}}\n`;
    const id = await this.submit({
      steps: [],
      maxAttempts: 1,
      manifest,
      inputs: { items: Array.from({ length: request.items }, (_, i) => i) },
    });
    await this.wait(id, timeoutMs);
    return id;
  }

  async getRun(id: string): Promise<Run> {
    const run = (await this.#client().getRun({ tenant: this.#tenant, runId: id })).run;
    if (!run) throw new Error(`run ${id} not found`);
    return run;
  }

  async results(ids: readonly string[]): Promise<RunTimes[]> {
    return mapLimit(ids, 8, async (id) => {
      const times = runTimes(await this.getRun(id), this.#submitted.get(id) ?? Number.NaN);
      const noticed = this.noticed.get(id);
      const accepted = this.accepted.get(id);
      return {
        ...times,
        ...(noticed === undefined ? {} : { noticedMs: noticed }),
        ...(accepted === undefined ? {} : { acceptedMs: accepted }),
      };
    });
  }
}

/** BullMQ or graphile-worker: worker processes running bench/peer-worker.ts. */
export class PeerSystem implements System {
  readonly name: "bullmq" | "graphile";
  readonly #env: BenchEnv;
  #workers: Child[] = [];
  #pool: pg.Pool | undefined;
  #listener: pg.Client | undefined;
  #queue: Queue<StepJob> | undefined;
  #queueConnection: Redis | undefined;
  #queueName = "";
  #databaseUrl = "";
  #waiters = new Map<string, () => void>();
  #done = new Set<string>();
  /** When closedLoop learnt that a run finished. */
  readonly noticed = new Map<string, number>();
  /** When the submission of a run returned. */
  readonly accepted = new Map<string, number>();

  constructor(name: "bullmq" | "graphile", env: BenchEnv) {
    this.name = name;
    this.#env = env;
  }

  async start(options: StartOptions): Promise<void> {
    this.#databaseUrl = await ensureDatabase(this.#env.pgBase, `bench_${this.name}`);
    this.#pool = new pg.Pool({ connectionString: this.#databaseUrl, max: 16 });
    await this.#pool.query(BENCH_SCHEMA);
    this.#queueName = `bench-${randomUUID().slice(0, 8)}`;
    if (this.name === "bullmq") {
      this.#queueConnection = new Redis(this.#env.redisUrl, { maxRetriesPerRequest: null });
      this.#queue = new Queue<StepJob>(this.#queueName, { connection: this.#queueConnection });
    }
    this.#listener = new pg.Client({ connectionString: this.#databaseUrl });
    await this.#listener.connect();
    this.#listener.on("notification", (message) => {
      const id = message.payload ?? "";
      this.#done.add(id);
      this.#waiters.get(id)?.();
    });
    await this.#listener.query("LISTEN bench_done");
    await this.setWorkers(options);
  }

  async setWorkers(options: StartOptions): Promise<void> {
    await stopChildren(this.#workers);
    this.#workers = [];
    for (let i = 0; i < options.workers; i++) {
      const child = await startChild(
        `${this.name}-worker-${i}`,
        "bench/peer-worker.ts",
        {
          BENCH_PEER: JSON.stringify({
            system: this.name,
            databaseUrl: this.#databaseUrl,
            redisUrl: this.#env.redisUrl,
            queueName: this.#queueName,
            concurrency: options.concurrency,
            isolation: options.isolation,
            workRoot: path.join(this.#env.tempDir, `${this.name}-worker-${i}-steps`),
          }),
        },
        path.join(this.#env.tempDir, "logs"),
        true,
      );
      this.#workers.push(child);
      const event = await nextEvent(child, 60_000);
      if (event.event !== "ready") throw new Error(`${child.name}: ${JSON.stringify(event)}`);
    }
  }

  async stop(): Promise<void> {
    await stopChildren(this.#workers);
    this.#workers = [];
    await this.#queue?.obliterate({ force: true }).catch(() => {});
    await this.#queue?.close();
    this.#queueConnection?.disconnect();
    await this.#listener?.end();
    await this.#pool?.end();
  }

  components(): Components {
    return { ...this.#env.shared, worker: this.#workers.map((c) => c.process.pid ?? 0) };
  }

  memoryComponents(): string[] {
    return ["worker"];
  }

  #db(): pg.Pool {
    if (!this.#pool) throw new Error(`${this.name} is not started`);
    return this.#pool;
  }

  async reset(): Promise<void> {
    await this.#db().query("TRUNCATE bench_steps, bench_runs");
    this.#done.clear();
  }

  /** Creates the run (commit 1) and queues its first step. */
  async submit(request: RunRequest): Promise<string> {
    const id = randomUUID();
    const job: StepJob = {
      runId: id,
      idx: 0,
      argv: request.steps,
      maxAttempts: request.maxAttempts,
    };
    const submittedMs = nowMs();
    if (this.name === "bullmq") {
      await createRun(this.#db(), id, request.steps.length, submittedMs);
      await this.#queue?.add("step", job, bullmqJobOptions(request.maxAttempts));
    } else {
      // graphile-worker: the run and its first job in one transaction.
      await this.#db().query(
        `WITH r AS (INSERT INTO bench_runs (id, steps, remaining, submitted_ms) VALUES ($1, $2, $2, $3) RETURNING id),
              s AS (INSERT INTO bench_steps (run_id, idx) SELECT r.id, i FROM r, generate_series(0, $2 - 1) AS i)
         SELECT graphile_worker.add_job('step', $4::json, max_attempts => $5::int) FROM r`,
        [id, request.steps.length, submittedMs, JSON.stringify(job), request.maxAttempts],
      );
    }
    this.accepted.set(id, nowMs());
    return id;
  }

  wait(id: string, timeoutMs = 120_000): Promise<void> {
    if (this.#done.has(id)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`run ${id} did not finish`)), timeoutMs);
      this.#waiters.set(id, () => {
        clearTimeout(timer);
        this.#waiters.delete(id);
        resolve();
      });
    });
  }

  closedLoop(count: number, window: number, request: RunRequest | RequestFor): Promise<string[]> {
    return runClosedLoop(this, count, window, request);
  }

  async waitAll(ids: readonly string[], timeoutMs: number): Promise<void> {
    await until(
      `${this.name} runs to finish`,
      async () =>
        (
          await this.#db().query<{ n: number }>(
            "SELECT count(*)::int AS n FROM bench_runs WHERE id = ANY($1) AND finished_ms IS NULL",
            [ids],
          )
        ).rows[0]?.n === 0,
      { timeoutMs, intervalMs: 100 },
    );
  }

  async burst(
    count: number,
    submitters: number,
    request: RunRequest,
    timeoutMs: number,
  ): Promise<string[]> {
    const ids = await mapLimit(Array.from({ length: count }), submitters, () =>
      this.submit(request),
    );
    await this.waitAll(ids, timeoutMs);
    return ids;
  }

  async fanOut(request: MapRequest, timeoutMs: number): Promise<string> {
    const id = randomUUID();
    const submittedMs = nowMs();
    if (this.name === "bullmq") {
      await createRun(this.#db(), id, request.items, submittedMs);
      const jobs = Array.from({ length: request.items }, (_, idx) => ({
        name: "step",
        data: { runId: id, idx, argv: [request.argv], map: true, maxAttempts: 1 } as StepJob,
        opts: bullmqJobOptions(1),
      }));
      await this.#queue?.addBulk(jobs);
    } else {
      await this.#db().query(
        `WITH r AS (INSERT INTO bench_runs (id, steps, remaining, submitted_ms) VALUES ($1, $2, $2, $3) RETURNING id),
              s AS (INSERT INTO bench_steps (run_id, idx) SELECT r.id, i FROM r, generate_series(0, $2 - 1) AS i)
         SELECT count(graphile_worker.add_job('step', json_build_object('runId', $1::text, 'idx', i, 'argv', $4::json, 'map', true, 'maxAttempts', 1)))
           FROM r, generate_series(0, $2 - 1) AS i`,
        [id, request.items, submittedMs, JSON.stringify([request.argv])],
      );
    }
    await this.waitAll([id], timeoutMs);
    return id;
  }

  async results(ids: readonly string[]): Promise<RunTimes[]> {
    return (await readRuns(this.#db(), ids)).map((times) => {
      const noticed = this.noticed.get(times.id);
      const accepted = this.accepted.get(times.id);
      return {
        ...times,
        ...(noticed === undefined ? {} : { noticedMs: noticed }),
        ...(accepted === undefined ? {} : { acceptedMs: accepted }),
      };
    });
  }
}

/** The floor runner: a Node process doing the runs' commits and spawns itself, no queue. */
export class FloorSystem implements System {
  readonly name = "floor";
  readonly #env: BenchEnv;
  #runner: Child | undefined;
  #pool: pg.Pool | undefined;
  #slots = 8;

  constructor(env: BenchEnv) {
    this.#env = env;
  }

  async start(options: StartOptions): Promise<void> {
    this.#slots = options.concurrency;
    const databaseUrl = await ensureDatabase(this.#env.pgBase, "bench_floor");
    this.#pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    await this.#pool.query(BENCH_SCHEMA);
    this.#runner = await startChild(
      "floor",
      "bench/peer-worker.ts",
      { BENCH_PEER: JSON.stringify({ system: "floor", databaseUrl, concurrency: 16 }) },
      path.join(this.#env.tempDir, "logs"),
      true,
    );
    const event = await nextEvent(this.#runner, 60_000);
    if (event.event !== "ready") throw new Error(`floor: ${JSON.stringify(event)}`);
  }

  async stop(): Promise<void> {
    if (this.#runner) await stopChildren([this.#runner]);
    await this.#pool?.end();
  }

  components(): Components {
    return { ...this.#env.shared, worker: [this.#runner?.process.pid ?? 0] };
  }

  memoryComponents(): string[] {
    return ["worker"];
  }

  async reset(): Promise<void> {
    await this.#pool?.query("TRUNCATE bench_steps, bench_runs");
  }

  async #command(command: Record<string, unknown>, timeoutMs: number): Promise<void> {
    const runner = this.#runner;
    if (!runner) throw new Error("floor is not started");
    runner.process.stdin?.write(`${JSON.stringify(command)}\n`);
    const event = await nextEvent(runner, timeoutMs);
    if (event.event !== "done") throw new Error(`floor: ${JSON.stringify(event)}`);
  }

  async closedLoop(
    count: number,
    window: number,
    request: RunRequest | RequestFor,
  ): Promise<string[]> {
    const runs = Array.from({ length: count }, () => randomUUID());
    const argv = requestAt(request, 0).steps;
    await this.#command({ cmd: "closed", runs, window, argv }, 600_000);
    return runs;
  }

  async burst(
    count: number,
    _submitters: number,
    request: RunRequest,
    timeoutMs: number,
  ): Promise<string[]> {
    const runs = Array.from({ length: count }, () => randomUUID());
    await this.#command({ cmd: "burst", runs, slots: this.#slots, argv: request.steps }, timeoutMs);
    return runs;
  }

  async fanOut(request: MapRequest, timeoutMs: number): Promise<string> {
    const run = randomUUID();
    await this.#command(
      { cmd: "map", run, items: request.items, slots: request.concurrency, argv: request.argv },
      timeoutMs,
    );
    return run;
  }

  results(ids: readonly string[]): Promise<RunTimes[]> {
    if (!this.#pool) throw new Error("floor is not started");
    return readRuns(this.#pool, ids);
  }
}
