import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { isTenantName, tenantNameRule } from "@packrun/contract";
import { runStateFromProto, runStateToProto, stepStateToProto } from "@packrun/contract/proto";
import type { ChannelListener, Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { createLogger, type Logger } from "@packrun/logging";
import {
  CancelRunResponseSchema,
  DecideApprovalResponseSchema,
  DurationBucketSchema,
  DurationHistogramSchema,
  type ExecutorService,
  ExportApprovalRequestResponseSchema,
  GetRunResponseSchema,
  GetRunStatisticsResponseSchema,
  GetWorkerHealthResponseSchema,
  ImportApprovalResponseResponseSchema,
  ListDeadLettersResponseSchema,
  ListRunsResponseSchema,
  RecordApprovalRefusalResponseSchema,
  RerunMode,
  RerunRunResponseSchema,
  RetryDeadLettersResponseSchema,
  RunStateCountSchema,
  StepStateCountSchema,
  SubmitRunResponseSchema,
  ValueHistogramSchema,
  WatchRunResponseSchema,
  WorkerHealthSchema,
} from "@packrun/proto/executor/v1";
import { rpcCallerKey } from "@packrun/rpc-server";
import type { OfflineApprovals } from "../approvals/offline-approvals.ts";
import { credentialOfClaims, credentialOfPrincipal } from "../approvals/token-approval.ts";
import { loadRunLinks, type RerunMode as RerunModeName } from "../run/rerun-run.ts";
import type { CumulativeHistogram } from "../run/run-statistics.ts";
import type { RunState, StepState } from "../run/state-machine.ts";
import { terminalRunStates } from "../run/state-machine.ts";
import { scheduledRunKeyPrefix } from "../schedules/schedule-runs.ts";
import { ReadPacer, runChangedChannel } from "../store/change-hints.ts";
import { listDeadLetters, retryDeadLetters } from "../store/dead-letters.ts";
import type { WorkQueue } from "../worker/work-queue.ts";
import { deadLetterMessage } from "./dead-letter-message.ts";
import { withRunLinks } from "./run-links-message.ts";
import { runMessage, runSummaryMessage } from "./run-messages.ts";
import type { RunService, RunSubmission } from "./run-service.ts";

function requireTenant(tenant: string): string {
  if (!isTenantName(tenant))
    throw new PackrunError("REQUEST_INVALID", `tenant must be ${tenantNameRule}`);
  return tenant;
}

const silentLogger = createLogger({ service: "executor", level: "silent" });

const rerunModes = new Map<RerunMode, RerunModeName>([
  [RerunMode.RERUN, "rerun"],
  [RerunMode.RESUME, "resume"],
]);

const limits = { approver: 512, approvalId: 128, reason: 4096 } as const;
// Identities and ids go into events and logs verbatim: no control characters (nor NUL, which
// PostgreSQL cannot store).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const controlCharacter = /[\u0000-\u001f\u007f]/;
const errorCodePattern = /^[A-Z][A-Z0-9_]{0,63}$/;

function requireApprover(approver: string): string {
  if (approver === "") throw new PackrunError("REQUEST_INVALID", "approver is required");
  if (approver.length > limits.approver || controlCharacter.test(approver))
    throw new PackrunError(
      "REQUEST_INVALID",
      `approver must be at most ${limits.approver} characters without control characters`,
    );
  return approver;
}

function requireApprovalId(approvalId: string): string {
  if (approvalId.length > limits.approvalId || controlCharacter.test(approvalId))
    throw new PackrunError(
      "REQUEST_INVALID",
      `approval_id must be at most ${limits.approvalId} characters without control characters`,
    );
  return approvalId;
}

/** Furthest a run may be delayed (`not_before`). */
const maxDelayMs = 366 * 24 * 3600 * 1000;

/** A submission's `not_before` as a Date; undefined when unset. */
function submissionNotBefore(value: Timestamp | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = timestampDate(value);
  if (Number.isNaN(date.getTime()) || date.getTime() > Date.now() + maxDelayMs)
    throw new PackrunError(
      "REQUEST_INVALID",
      "not_before must be a valid time at most 366 days ahead",
    );
  return date;
}

/** Options of {@link createExecutorService}. */
export interface ExecutorServiceOptions {
  /**
   * Wakes WatchRun streams when their run changes (channel {@link runChangedChannel}). Without
   * it, WatchRun polls every `watchIntervalMs`.
   */
  changes?: ChannelListener;
  /**
   * WatchRun re-reads the run at least this often even without a notification, so a lost one
   * costs latency, never correctness. Default 2000 ms with `changes`, 200 ms without.
   */
  watchIntervalMs?: number;
  /** Least time between two reads of one WatchRun stream (default {@link watchMinGapMs}). */
  watchMinGapMs?: number;
  /** What re-driving dead letters needs besides the run service (default: no queue, no logs). */
  deadLetters?: { queue: WorkQueue; logger: Logger };
  /** Offline approval export and import; without it those RPCs answer UNAVAILABLE. */
  offlineApprovals?: OfflineApprovals;
}

/**
 * Default least time between two reads of one WatchRun stream. A run's transitions come in
 * bursts (a map of 2,000 children commits many transactions a second), each read costs four
 * queries: 25 ms caps a small run's watcher at 40 reads a second while delaying a notice by at
 * most 25 ms, and only one that closely follows another change; the first read after a quiet
 * spell is immediate. Slow reads (a view of 2,000 steps takes ~100 ms) are spaced out further,
 * see {@link ReadPacer}.
 */
export const watchMinGapMs = 25;

/** The bucket messages of a cumulative histogram. */
function bucketMessages(histogram: CumulativeHistogram) {
  return histogram.buckets.map((bucket) =>
    create(DurationBucketSchema, {
      upperBound: bucket.upperBound,
      cumulativeCount: BigInt(bucket.cumulativeCount),
    }),
  );
}

/** The ExecutorService RPCs over a {@link RunService}. */
export function createExecutorService(
  runs: RunService,
  database: Database,
  options: ExecutorServiceOptions = {},
): ServiceImpl<typeof ExecutorService> {
  const offline = (): OfflineApprovals => {
    if (options.offlineApprovals === undefined)
      throw new PackrunError("UNAVAILABLE", "offline approvals are not enabled on this executor");
    return options.offlineApprovals;
  };
  return {
    async submitRun(request) {
      const tenant = requireTenant(request.tenant);
      const source = request.pack?.source;
      let pack: RunSubmission["pack"];
      if (source?.case === "manifest") pack = { manifest: source.value };
      else if (source?.case === "ref")
        pack = { ref: { name: source.value.name, version: source.value.version } };
      else
        throw new PackrunError(
          "REQUEST_INVALID",
          "pack must be an inline manifest or a registry reference",
        );
      if (request.idempotencyKey.startsWith(scheduledRunKeyPrefix))
        throw new PackrunError(
          "REQUEST_INVALID",
          `idempotency_key may not start with "${scheduledRunKeyPrefix}": those keys belong to scheduled runs`,
        );
      const notBefore = submissionNotBefore(request.notBefore);
      const { view, created } = await runs.submit({
        tenant,
        pack,
        inputs: (request.inputs ?? {}) as Record<string, unknown>,
        secrets: request.secrets,
        priority: request.priority,
        idempotencyKey: request.idempotencyKey,
        submittedBy: request.submittedBy,
        labels: request.labels,
        // schedule_id and scheduled_for are the scheduler's own: ignored from callers.
        ...(notBefore === undefined ? {} : { notBefore }),
        ...(request.timeoutSeconds === 0 ? {} : { timeoutSeconds: request.timeoutSeconds }),
      });
      return create(SubmitRunResponseSchema, { run: runMessage(view), created });
    },

    async getRun(request) {
      const tenant = requireTenant(request.tenant);
      const view = await runs.get(tenant, request.runId);
      return create(GetRunResponseSchema, {
        run: withRunLinks(runMessage(view), await loadRunLinks(database, tenant, view.run.id)),
      });
    },

    async listDeadLetters(request) {
      const page = await listDeadLetters(database, {
        tenant: requireTenant(request.tenant),
        includeRetried: request.includeRetried,
        runId: request.runId,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return create(ListDeadLettersResponseSchema, {
        deadLetters: page.deadLetters.map(deadLetterMessage),
        nextPageToken: page.nextPageToken,
      });
    },

    async retryDeadLetters(request) {
      const result = await retryDeadLetters(
        {
          database,
          runs,
          ...(options.deadLetters === undefined ? {} : { queue: options.deadLetters.queue }),
          logger: options.deadLetters?.logger ?? silentLogger,
        },
        {
          tenant: requireTenant(request.tenant),
          ids: request.ids,
          all: request.all,
          secrets: request.secrets,
          requestedBy: request.requestedBy,
        },
      );
      return create(RetryDeadLettersResponseSchema, result);
    },

    async rerunRun(request) {
      const tenant = requireTenant(request.tenant);
      const mode = rerunModes.get(request.mode);
      if (mode === undefined)
        throw new PackrunError(
          "REQUEST_INVALID",
          "mode must be RERUN_MODE_RERUN or RERUN_MODE_RESUME",
        );
      const view = await runs.rerun({
        tenant,
        runId: request.runId,
        mode,
        secrets: request.secrets,
        submittedBy: request.submittedBy,
      });
      return create(RerunRunResponseSchema, {
        run: withRunLinks(runMessage(view), await loadRunLinks(database, tenant, view.run.id)),
      });
    },

    async listRuns(request) {
      const states = request.states.map((value) => {
        const state = runStateFromProto(value);
        if (state === undefined)
          throw new PackrunError("REQUEST_INVALID", `unknown run state ${value}`);
        return state;
      });
      const page = await runs.list({
        tenant: requireTenant(request.tenant),
        states,
        packName: request.packName,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return create(ListRunsResponseSchema, {
        runs: page.runs.map(runSummaryMessage),
        nextPageToken: page.nextPageToken,
      });
    },

    async cancelRun(request) {
      const view = await runs.cancel(
        requireTenant(request.tenant),
        request.runId,
        request.reason,
        request.requestedBy,
      );
      return create(CancelRunResponseSchema, { run: runMessage(view) });
    },

    async decideApproval(request, context) {
      const caller = context.values.get(rpcCallerKey);
      const { view, gateStepId, recorded } = await runs.decideApproval({
        tenant: requireTenant(request.tenant),
        runId: request.runId,
        credential:
          caller?.kind === "token"
            ? credentialOfPrincipal(caller.principal, caller.authorization)
            : credentialOfClaims(request.token),
        named: {
          gateStepId: requireApprovalId(request.gateStepId),
          approvalId: requireApprovalId(request.approvalId),
        },
        approve: request.approve,
        comment: request.comment,
      });
      const run = runMessage(view);
      return create(DecideApprovalResponseSchema, {
        gate: run.gates.find((gate) => gate.stepId === gateStepId),
        recorded,
        runState: run.state,
      });
    },

    async exportApprovalRequest(request) {
      const exported = await offline().exportRequest({
        tenant: requireTenant(request.tenant),
        runId: request.runId,
        gate: request.gate,
        ttlSeconds: request.ttlSeconds,
        requestedBy: request.requestedBy,
      });
      return create(ExportApprovalRequestResponseSchema, {
        envelopeJson: exported.envelopeJson,
        requestId: exported.requestId,
        expiresAt: timestampFromDate(exported.expiresAt),
      });
    },

    async importApprovalResponse(request) {
      const imported = await offline().importResponse({
        tenant: requireTenant(request.tenant),
        envelopeJson: request.envelopeJson,
        importedBy: request.importedBy,
      });
      const run = runMessage(imported.view);
      return create(ImportApprovalResponseResponseSchema, {
        runId: run.id,
        gate: run.gates.find((gate) => gate.stepId === imported.gateStepId),
        approver: imported.approver,
        runState: run.state,
        recorded: imported.recorded,
      });
    },

    async recordApprovalRefusal(request) {
      const tenant = requireTenant(request.tenant);
      const approver = requireApprover(request.approver);
      const approvalId = requireApprovalId(request.approvalId);
      if (!errorCodePattern.test(request.code))
        throw new PackrunError(
          "REQUEST_INVALID",
          "code must be a stable error code: 1-64 upper-case letters, digits or _, e.g. PERMISSION_DENIED",
        );
      if (request.reason.length > limits.reason || request.reason.includes("\u0000"))
        throw new PackrunError(
          "REQUEST_INVALID",
          `reason must be at most ${limits.reason} characters without NUL`,
        );
      const { recorded } = await runs.recordApprovalRefusal({
        tenant,
        runId: request.runId,
        approvalId,
        approver,
        code: request.code,
        reason: request.reason,
        ...(request.gateStepId === "" ? {} : { gateStepId: request.gateStepId }),
      });
      return create(RecordApprovalRefusalResponseSchema, { recorded });
    },

    async getRunStatistics() {
      const statistics = await runs.statistics();
      const histogram = statistics.attemptDurations;
      return create(GetRunStatisticsResponseSchema, {
        runsByState: (Object.entries(statistics.runsByState) as [RunState, number][]).map(
          ([state, count]) =>
            create(RunStateCountSchema, { state: runStateToProto(state), count: BigInt(count) }),
        ),
        stepsByState: (Object.entries(statistics.stepsByState) as [StepState, number][]).map(
          ([state, count]) =>
            create(StepStateCountSchema, { state: stepStateToProto(state), count: BigInt(count) }),
        ),
        queueWaiting: BigInt(statistics.queue?.waiting ?? 0),
        queueDelayed: BigInt(statistics.queue?.delayed ?? 0),
        queueActive: BigInt(statistics.queue?.active ?? 0),
        queueDeadLetter: BigInt(statistics.queue?.deadLetter ?? 0),
        queueAvailable: statistics.queue !== undefined,
        stepAttemptDurations: create(DurationHistogramSchema, {
          buckets: histogram.buckets.map((bucket) =>
            create(DurationBucketSchema, {
              upperBound: bucket.upperBound,
              cumulativeCount: BigInt(bucket.cumulativeCount),
            }),
          ),
          count: BigInt(histogram.count),
          sumSeconds: histogram.sumSeconds,
        }),
        retriesTotal: BigInt(statistics.retriesTotal),
        stepAttemptCpuSeconds: create(DurationHistogramSchema, {
          buckets: bucketMessages(statistics.cpuSeconds),
          count: BigInt(statistics.cpuSeconds.count),
          sumSeconds: statistics.cpuSeconds.sum,
        }),
        stepAttemptPeakMemoryBytes: create(ValueHistogramSchema, {
          buckets: bucketMessages(statistics.peakMemoryBytes),
          count: BigInt(statistics.peakMemoryBytes.count),
          sum: statistics.peakMemoryBytes.sum,
        }),
      });
    },

    async *watchRun(request, context) {
      const tenant = requireTenant(request.tenant);
      const { changes } = options;
      const pacer = new ReadPacer({
        fallbackMs: options.watchIntervalMs ?? (changes === undefined ? 200 : 2000),
        minGapMs: changes === undefined ? 0 : (options.watchMinGapMs ?? watchMinGapMs),
      });
      // Subscribed before the first read: a change committed after that read is always heard.
      const unwatch = changes?.watch(runChangedChannel, request.runId, () => pacer.hint());
      const stop = () => pacer.close();
      context.signal.addEventListener("abort", stop);
      if (context.signal.aborted) stop();
      try {
        let last = "";
        while (await pacer.next()) {
          const view = await runs.get(tenant, request.runId);
          const fingerprint = createHash("sha256")
            .update(
              JSON.stringify([
                view.run.state,
                view.steps.map((step) => [step.step_id, step.state, step.attempt]),
                view.decisions.length,
              ]),
            )
            .digest("hex");
          if (fingerprint !== last) {
            last = fingerprint;
            yield create(WatchRunResponseSchema, { run: runMessage(view) });
          }
          if (
            terminalRunStates.has(view.run.state as RunState) &&
            !view.steps.some((step) => step.state === "running")
          )
            return;
        }
      } finally {
        unwatch?.();
        context.signal.removeEventListener("abort", stop);
        pacer.close();
      }
    },

    async getWorkerHealth() {
      const rows = (
        await database.query<{
          id: string;
          host: string;
          last_heartbeat_at: Date;
          in_flight: number;
          capacity: number;
          status: string;
          lost: boolean;
        }>(
          "SELECT *, last_heartbeat_at < now() - interval '30 seconds' AS lost FROM workers ORDER BY id",
        )
      ).rows;
      return create(GetWorkerHealthResponseSchema, {
        workers: rows.map((row) =>
          create(WorkerHealthSchema, {
            workerId: row.id,
            host: row.host,
            lastHeartbeatAt: timestampFromDate(row.last_heartbeat_at),
            inFlight: row.in_flight,
            capacity: row.capacity,
            status: row.status === "stopped" ? "stopped" : row.lost ? "lost" : row.status,
          }),
        ),
      });
    },
  };
}
