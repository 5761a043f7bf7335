import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { type RerunRequest, rerunRun } from "../run/rerun-run.ts";
import type { AdmissionLimits } from "../run/run-admission.ts";
import { computeRunStatistics, type RunStatistics } from "../run/run-statistics.ts";
import { RunScheduler } from "../run/scheduler.ts";
import { type RunState, terminalRunStates } from "../run/state-machine.ts";
import type { SecretVault } from "../secrets/secret-vault.ts";
import { decodePageToken, keysetPage } from "../store/keyset-page.ts";
import { type ReadyWork, type RunRow, runColumns } from "../store/run-rows.ts";
import type { QueueDepth, WorkQueue } from "../worker/work-queue.ts";
import { createPlanCache } from "./plan-cache.ts";
import {
  type ApprovalRefusal,
  type ApprovalRequest,
  decideApproval,
  recordApprovalRefusal,
} from "./run-approvals.ts";
import {
  type LatestVersionResolver,
  type PlanFetcher,
  type RunSubmission,
  submitRun,
} from "./run-submission.ts";
import { type RunView, readRunView, requireRunId } from "./run-view.ts";
import { putRunSecrets, queueTimeoutMs, withTimeout } from "./with-timeout.ts";

export type { ApprovalRefusal, ApprovalRequest } from "./run-approvals.ts";
export {
  effectiveTimeout,
  type LatestVersionResolver,
  type PlanFetcher,
  type PlannedPack,
  type RunSubmission,
  type ScheduledRun,
} from "./run-submission.ts";
export type { AttemptRow, DecisionRow, RunView } from "./run-view.ts";

/** Dependencies of {@link createRunService}. */
export interface RunServiceOptions {
  database: Database;
  queue: WorkQueue;
  vault: SecretVault;
  plan: PlanFetcher;
  /** Resolves "latest" before the plan cache is asked; without it such runs are not cached. */
  latestVersion?: LatestVersionResolver;
  logger: Logger;
  /** Which queued runs may start (default: no per-user limit). */
  admission?: AdmissionLimits;
}

/** Runs as the executor's RPCs see them: submit, read, list, cancel, decide approvals. */
export interface RunService {
  submit(submission: RunSubmission): Promise<{ view: RunView; created: boolean }>;
  get(tenant: string, runId: string): Promise<RunView>;
  list(query: RunListQuery): Promise<{ runs: RunRow[]; nextPageToken: string }>;
  cancel(tenant: string, runId: string, reason: string, requestedBy: string): Promise<RunView>;
  /**
   * Decides an approval by the rules of run/approval-decision.ts, under the run's lock; a
   * refusal is recorded in the run's evidence (`gate.approval_refused`) and thrown.
   */
  decideApproval(
    request: ApprovalRequest,
  ): Promise<{ view: RunView; gateStepId: string; recorded: boolean }>;
  /**
   * Records a refused approval in the run's evidence trail (a `gate.approval_refused` event),
   * unless the run already ended (then it is only logged: the evidence log takes no event after
   * the terminal one). Throws RUN_NOT_FOUND for an unknown run or another tenant's.
   */
  recordApprovalRefusal(refusal: ApprovalRefusal): Promise<{ recorded: boolean }>;
  /** Cluster-wide counts for metrics; the queue's depth is undefined when it did not answer. */
  statistics(): Promise<RunStatistics & { queue: QueueDepth | undefined }>;
  /** Queues steps that became claimable; failures are logged (the reconciler retries). */
  enqueue(ready: readonly ReadyWork[]): Promise<void>;
  /** Starts a new run from a finished one (see rerun-run.ts); returns the new run. */
  rerun(request: RerunRequest): Promise<RunView>;
}

/** A page of a tenant's runs, newest first. */
export interface RunListQuery {
  tenant: string;
  states: RunState[];
  packName: string;
  pageSize: number;
  pageToken: string;
}

/** Lists a tenant's runs newest first, by keyset pages (at most 500 a page). */
async function listRuns(
  database: Database,
  query: RunListQuery,
): Promise<{ runs: RunRow[]; nextPageToken: string }> {
  const size = Math.min(Math.max(query.pageSize || 50, 1), 500);
  const after = query.pageToken === "" ? undefined : decodePageToken(query.pageToken);
  const rows = (
    await database.query<RunRow>(
      `SELECT ${runColumns} FROM runs
        WHERE tenant = $1
          AND (cardinality($2::text[]) = 0 OR state = ANY($2))
          AND ($3 = '' OR pack_name = $3)
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
        ORDER BY created_at DESC, id DESC LIMIT $6`,
      [
        query.tenant,
        query.states,
        query.packName,
        after?.createdAt ?? null,
        after?.id ?? "00000000-0000-0000-0000-000000000000",
        size + 1,
      ],
    )
  ).rows;
  const { page, nextPageToken } = keysetPage(rows, size);
  return { runs: page, nextPageToken };
}

/** Cancels a run that has not ended (a run that has is left as it is). */
async function cancelRun(
  database: Database,
  tenant: string,
  runId: string,
  reason: string,
  requestedBy: string,
): Promise<void> {
  requireRunId(runId);
  await database.transaction(async (tx) => {
    const scheduler = await RunScheduler.lock(tx, runId, tenant);
    if (scheduler === undefined) throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
    if (terminalRunStates.has(scheduler.run.state)) return;
    await scheduler.endRun(
      "cancelled",
      reason === "" ? `cancelled by ${requestedBy || "a user"}` : reason,
      "cancelled",
    );
  });
}

/** Creates the run service over the executor's database, queue and secret vault. */
export function createRunService(options: RunServiceOptions): RunService {
  const { database, queue, vault, logger } = options;
  const admission: AdmissionLimits = options.admission ?? { perSubjectRuns: 0 };
  const planFor = createPlanCache(
    options.plan,
    options.latestVersion === undefined ? {} : { latestVersion: options.latestVersion },
  );

  const enqueue = async (ready: readonly ReadyWork[]) => {
    if (ready.length === 0) return;
    try {
      await withTimeout(queue.enqueue(ready), queueTimeoutMs, "the work queue");
    } catch (error) {
      // The steps are claimable in Postgres; the reconciler queues them once the queue is back.
      logger.warn(
        { err: error, steps: ready.length },
        "queueing failed; the reconciler will queue these steps",
      );
    }
  };

  const view = async (tenant: string, runId: string): Promise<RunView> => {
    requireRunId(runId);
    return readRunView(database, tenant, runId);
  };
  const approvals = { database, logger, enqueue };

  return {
    enqueue,
    get: view,
    recordApprovalRefusal: (refusal) => recordApprovalRefusal(approvals, refusal),
    decideApproval: (request) => decideApproval(approvals, request),
    submit: (submission) =>
      submitRun({ database, vault, logger, admission, planFor, enqueue }, submission),
    list: (query) => listRuns(database, query),

    async rerun(request) {
      const runId = await rerunRun(
        {
          database,
          enqueue,
          logger,
          putSecrets: (runId, secrets) => putRunSecrets(vault, runId, secrets),
          deleteSecrets: (runId) => vault.delete(runId),
        },
        request,
      );
      return view(request.tenant, runId);
    },

    async statistics() {
      const [statistics, depth] = await Promise.all([
        computeRunStatistics(database),
        withTimeout(queue.depth(), queueTimeoutMs, "the work queue").catch((error: unknown) => {
          logger.warn({ err: error }, "the work queue's depth is unavailable");
          return undefined;
        }),
      ]);
      return { ...statistics, queue: depth };
    },

    async cancel(tenant, runId, reason, requestedBy) {
      await cancelRun(database, tenant, runId, reason, requestedBy);
      logger.info({ runId, tenant, requestedBy }, "run cancelled");
      return view(tenant, runId);
    },
  };
}
