import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { runStateFromProto } from "@packrun/contract/proto";
import type { ChannelListener, Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { createLogger, type Logger } from "@packrun/logging";
import {
  CancelRunResponseSchema,
  DecideApprovalResponseSchema,
  type ExecutorService,
  ExportApprovalRequestResponseSchema,
  GetRunResponseSchema,
  GetWorkerHealthResponseSchema,
  ImportApprovalResponseResponseSchema,
  ListDeadLettersResponseSchema,
  ListRunsResponseSchema,
  RecordApprovalRefusalResponseSchema,
  RerunMode,
  RerunRunResponseSchema,
  RetryDeadLettersResponseSchema,
  SubmitRunResponseSchema,
  WorkerHealthSchema,
} from "@packrun/proto/executor/v1";
import { rpcCallerKey } from "@packrun/rpc-server";
import type { OfflineApprovals } from "../approvals/offline-approvals.ts";
import { credentialOfClaims, credentialOfPrincipal } from "../approvals/token-approval.ts";
import { loadRunLinks, type RerunMode as RerunModeName } from "../run/rerun-run.ts";
import { scheduledRunKeyPrefix } from "../schedules/schedule-runs.ts";
import { runChangedChannel } from "../store/change-hints.ts";
import { listDeadLetters, retryDeadLetters } from "../store/dead-letters.ts";
import type { WorkQueue } from "../worker/work-queue.ts";
import { deadLetterMessage } from "./dead-letter-message.ts";
import {
  requireApprovalId,
  requireApprover,
  requireRefusal,
  requireTenant,
  submissionNotBefore,
} from "./request-checks.ts";
import { withRunLinks } from "./run-links-message.ts";
import { runMessage, runSummaryMessage } from "./run-messages.ts";
import type { RunService, RunSubmission } from "./run-service.ts";
import { runStatisticsMessage } from "./statistics-message.ts";
import { watchRun } from "./watch-run.ts";

const silentLogger = createLogger({ service: "executor", level: "silent" });

const rerunModes = new Map<RerunMode, RerunModeName>([
  [RerunMode.RERUN, "rerun"],
  [RerunMode.RESUME, "resume"],
]);

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
      requireRefusal(request.code, request.reason);
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
      return runStatisticsMessage(await runs.statistics());
    },

    watchRun: (request, context) => watchRun(runs, options, request, context),

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
