import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import {
  type ChannelListener,
  createPostgresChannelListener,
  type Database,
  migrate,
} from "@packrun/db";
import type { Logger } from "@packrun/logging";
import { ExecutorService } from "@packrun/proto/executor/v1";
import { ScheduleService } from "@packrun/proto/executor/v1/schedules";
import { PlannerService } from "@packrun/proto/planner/v1";
import { type ServiceSecurity, serviceTransport, startRpcServer } from "@packrun/rpc-server";
import {
  createRpcMetrics,
  type MetricsServer,
  rpcClientTracing,
  startMetricsServer,
} from "@packrun/telemetry";
import { type ApproverKeySource, currentApproverKeys } from "../approvals/approver-keys.ts";
import { createOfflineApprovals } from "../approvals/offline-approvals.ts";
import { evidenceApprovalRequestSigner } from "../evidence/approval-request-signer.ts";
import { createEvidenceSink, type EvidenceSink } from "../evidence/evidence-sink.ts";
import { createReconciler, type Reconciler } from "../run/reconciler.ts";
import type { AdmissionLimits } from "../run/run-admission.ts";
import { createRunTimekeeper, type RunTimekeeper } from "../run/run-timekeeper.ts";
import { createScheduleService } from "../schedules/schedule-service.ts";
import { createScheduleStore, type ScheduleStore } from "../schedules/schedule-store.ts";
import type { SecretVault } from "../secrets/secret-vault.ts";
import { outboxChannel, runChangedChannel } from "../store/change-hints.ts";
import { createArtifactUploader } from "../worker/artifact-uploader.ts";
import { createLogWriter } from "../worker/log-writer.ts";
import { type StepRunner, StepWorker, type StepWorkerOptions } from "../worker/step-worker.ts";
import type { WorkQueue } from "../worker/work-queue.ts";
import { executorAccessPolicy } from "./executor-access.ts";
import { createExecutorService } from "./executor-service.ts";
import {
  createRunService,
  type LatestVersionResolver,
  type PlanFetcher,
  type RunService,
} from "./run-service.ts";

/** The Postgres schema the executor owns; no other service reads it. */
export const executorSchema = "executor";

/** Directory of the executor's numbered SQL migrations. */
export const executorMigrationsDir = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Options for {@link startExecutor}. */
export interface ExecutorOptions {
  /** The executor's database, with `executor` first on its search_path. */
  database: Database;
  queue: WorkQueue;
  vault: SecretVault;
  logger: Logger;
  /** Where the planner serves (the executor asks it for every plan). */
  plannerUrl: string;
  runStep: StepRunner;
  workRoot: string;
  /** Serve the RPCs (false for a worker-only process). */
  serve?: boolean;
  /** Run a worker in this process (false for an API-only process). */
  work?: boolean;
  port?: number;
  host?: string;
  /**
   * Serve Prometheus metrics on this plain HTTP port at `/metrics`: process metrics, and RPC
   * durations when serving the RPCs.
   */
  metrics?: { port: number; host?: string };
  worker?: Partial<
    Pick<
      StepWorkerOptions,
      "concurrency" | "leaseMs" | "tenantConcurrency" | "killGraceMs" | "limits" | "workerId"
    >
  >;
  reconcileIntervalMs?: number;
  requeueAfterMs?: number;
  /** A worker without a heartbeat for this long is declared lost (default 1 minute). */
  workerLostAfterMs?: number;
  /**
   * Kills what a lost worker of this machine left running (the runtime's `reapOrphans`); without
   * it, only the runtimes' own die-with-parent protection applies.
   */
  reapOrphans?: (workerId: string) => Promise<unknown>;
  /** Where the evidence service serves; events and finalisation are shipped there. */
  evidenceUrl?: string;
  /** Stable identity of this executor deployment, recorded in attestations. */
  executorId?: string;
  /**
   * Change notifications (LISTEN/NOTIFY) waking WatchRun and the evidence shipper: the URL of
   * the executor's database, for one dedicated connection this executor opens and closes, or
   * a listener on `executorChannels` that the caller owns. Without it both poll, which
   * is meant for tests only.
   */
  changes?: { databaseUrl: string } | { listener: ChannelListener };
  /** WatchRun's read interval without notifications (see {@link createExecutorService}). */
  watchIntervalMs?: number;
  /** Which queued runs may start: the per-user limit of runs in flight (default none). */
  admission?: AdmissionLimits;
  /** The loop firing schedules, starting waiting runs and enforcing run deadlines. */
  timekeeper?: { intervalMs?: number; missedGraceMs?: number };
  /**
   * Approver public keys per tenant for offline approvals: a file (PACKRUN_APPROVER_KEYS_FILE,
   * read again at every import) or fixed keys. Without them every offline response is refused
   * (APPROVER_UNKNOWN).
   */
  approverKeys?: ApproverKeySource;
  /**
   * TLS with this service's certificate, callers authenticated by client certificate or bearer
   * token and authorised per RPC. Without it: cleartext and unchecked, for in-process tests.
   */
  security?: ServiceSecurity;
}

/** A running executor process part. */
export interface Executor {
  /** Empty when not serving. */
  readonly url: string;
  /** Where `/metrics` is served; undefined without the metrics option. */
  readonly metricsUrl: string | undefined;
  readonly runs: RunService;
  readonly worker: StepWorker | undefined;
  readonly reconciler: Reconciler;
  readonly timekeeper: RunTimekeeper;
  readonly schedules: ScheduleStore;
  readonly evidence: EvidenceSink | undefined;
  /** Graceful stop: stop claiming, let steps finish within `graceMs`, hand the rest back. */
  close(graceMs?: number): Promise<void>;
}

/**
 * A PlanFetcher that calls the planner service over gRPC, with `latestVersion` (the planner's
 * GetPackVersion) to pin "latest"; `close` ends its HTTP/2 session.
 */
export function plannerPlanFetcher(
  plannerUrl: string,
  tls?: ServiceSecurity["tls"],
): PlanFetcher & { latestVersion: LatestVersionResolver; close(): void } {
  const { transport, sessions } = serviceTransport(plannerUrl, tls, {
    interceptors: [rpcClientTracing()],
  });
  const client = createClient(PlannerService, transport);
  const fetch: PlanFetcher = async (request) => {
    const response = await client.planPack({
      tenant: request.tenant,
      pack: {
        source:
          "manifest" in request.pack
            ? { case: "manifest", value: request.pack.manifest }
            : { case: "ref", value: request.pack.ref },
      },
      inputs: request.inputs as never,
      suppliedSecretNames: request.secretNames,
    });
    return {
      planHash: response.planHash,
      planJson: response.planJson,
      manifest: response.manifest,
      packName: response.summary?.packName ?? "",
      packVersion: response.summary?.packVersion ?? "",
      packDigest: response.summary?.packDigest ?? "",
    };
  };
  const latestVersion: LatestVersionResolver = async (tenant, name) => {
    const response = await client.getPackVersion({ tenant, name, version: "" });
    return response.version?.version ?? "";
  };
  return Object.assign(fetch, { latestVersion, close: () => sessions.abort() });
}

/**
 * Starts the executor: migrates its schema, serves ExecutorService, runs a worker and the
 * reconciler. Several executor processes may share one database and queue.
 */
export async function startExecutor(options: ExecutorOptions): Promise<Executor> {
  // Checked once at start, so a broken approver key file fails the start, not an import.
  await currentApproverKeys(options.approverKeys);
  const applied = await migrate(options.database, executorSchema, executorMigrationsDir);
  if (applied.length > 0)
    options.logger.info({ schema: executorSchema, migrations: applied }, "migrations applied");
  // First, so a failure leaves nothing running. Only channels with a reader: WatchRun's when
  // serving, the shipper's with an evidence service; no connection for neither.
  const channels = [
    ...(options.serve === false ? [] : [runChangedChannel]),
    ...(options.evidenceUrl === undefined ? [] : [outboxChannel]),
  ];
  const ownChanges =
    options.changes !== undefined && "databaseUrl" in options.changes && channels.length > 0
      ? await createPostgresChannelListener({
          url: options.changes.databaseUrl,
          channels,
          logger: options.logger,
          applicationName: "packrun-executor-listen",
        })
      : undefined;
  const changes =
    options.changes !== undefined && "listener" in options.changes
      ? options.changes.listener
      : ownChanges;
  const logs = createLogWriter(options.database, options.logger);
  const onRunFinished = (runId: string) => {
    // Secrets are needed by no step once the run ended.
    void options.vault.delete(runId).catch(() => {});
  };
  const tls = options.security?.tls;
  const planner = plannerPlanFetcher(options.plannerUrl, tls);
  const runs = createRunService({
    database: options.database,
    queue: options.queue,
    vault: options.vault,
    plan: planner,
    latestVersion: planner.latestVersion,
    logger: options.logger,
    ...(options.admission === undefined ? {} : { admission: options.admission }),
  });
  const schedules = createScheduleStore(options.database, planner);
  const timekeeper = createRunTimekeeper({
    database: options.database,
    runs,
    logger: options.logger,
    admission: options.admission ?? { perSubjectRuns: 0 },
    onRunFinished,
    ...(options.timekeeper?.intervalMs === undefined
      ? {}
      : { intervalMs: options.timekeeper.intervalMs }),
    ...(options.timekeeper?.missedGraceMs === undefined
      ? {}
      : { missedGraceMs: options.timekeeper.missedGraceMs }),
  });
  const reconciler = createReconciler({
    database: options.database,
    logger: options.logger,
    enqueue: runs.enqueue,
    onRunFinished,
    ...(options.reconcileIntervalMs === undefined
      ? {}
      : { intervalMs: options.reconcileIntervalMs }),
    ...(options.requeueAfterMs === undefined ? {} : { requeueAfterMs: options.requeueAfterMs }),
    ...(options.workerLostAfterMs === undefined
      ? {}
      : { workerLostAfterMs: options.workerLostAfterMs }),
    ...(options.reapOrphans === undefined ? {} : { reapWorker: options.reapOrphans }),
    // At least a lease: the longest a worker's result retry waits between attempts is 2 s.
    outageGraceMs: Math.max(options.worker?.leaseMs ?? 15_000, 5_000),
  });
  const artifacts =
    options.evidenceUrl === undefined
      ? undefined
      : createArtifactUploader(options.evidenceUrl, tls);
  const requestSigner =
    options.evidenceUrl === undefined
      ? undefined
      : evidenceApprovalRequestSigner(options.evidenceUrl, tls);
  const offlineApprovals = createOfflineApprovals({
    database: options.database,
    runs,
    sign: requestSigner,
    approverKeys: options.approverKeys,
    logger: options.logger,
  });
  let worker: StepWorker | undefined;
  if (options.work !== false) {
    worker = new StepWorker({
      database: options.database,
      queue: options.queue,
      vault: options.vault,
      logs,
      logger: options.logger,
      runStep: options.runStep,
      workRoot: options.workRoot,
      enqueue: runs.enqueue,
      onRunFinished,
      ...options.worker,
      ...(artifacts === undefined ? {} : { artifacts }),
    });
    await worker.start();
  }
  reconciler.start();
  timekeeper.start();
  const sink =
    options.evidenceUrl === undefined
      ? undefined
      : createEvidenceSink({
          database: options.database,
          logger: options.logger,
          evidenceUrl: options.evidenceUrl,
          ...(tls === undefined ? {} : { tls }),
          executorId: options.executorId ?? `executor@${hostname()}`,
          ...(changes === undefined ? {} : { changes }),
        });
  sink?.start();
  const server =
    options.serve === false
      ? undefined
      : await startRpcServer({
          routes: (router) =>
            router
              .service(
                ExecutorService,
                createExecutorService(runs, options.database, {
                  deadLetters: { queue: options.queue, logger: options.logger },
                  offlineApprovals,
                  ...(changes === undefined ? {} : { changes }),
                  ...(options.watchIntervalMs === undefined
                    ? {}
                    : { watchIntervalMs: options.watchIntervalMs }),
                }),
              )
              .service(ScheduleService, createScheduleService(schedules)),
          serviceNames: [ExecutorService.typeName, ScheduleService.typeName],
          logger: options.logger,
          ...(options.security === undefined
            ? {}
            : { security: { ...options.security, policy: executorAccessPolicy } }),
          ...(options.host === undefined ? {} : { host: options.host }),
          ...(options.port === undefined ? {} : { port: options.port }),
          ...(options.metrics === undefined
            ? {}
            : { metrics: { service: "executor", ...options.metrics } }),
        });
  // A worker-only process has no RPC server to carry the listener: process metrics on their own.
  let metricsServer: MetricsServer | undefined;
  if (server === undefined && options.metrics !== undefined)
    metricsServer = await startMetricsServer({
      registry: createRpcMetrics("executor").registry,
      ...options.metrics,
    });
  return {
    url: server?.url ?? "",
    metricsUrl: server?.metricsUrl ?? metricsServer?.url,
    runs,
    worker,
    reconciler,
    timekeeper,
    schedules,
    evidence: sink,
    async close(graceMs = 10_000) {
      await server?.close();
      await metricsServer?.close();
      await worker?.drain(graceMs);
      await reconciler.stop();
      await timekeeper.stop();
      await logs.close();
      await sink?.stop();
      await ownChanges?.close();
      artifacts?.close();
      requestSigner?.close();
      planner.close();
    },
  };
}
