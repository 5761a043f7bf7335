import { randomUUID } from "node:crypto";
import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { canonicalJson, sha256Digest } from "@packrun/planning";
import type { ApprovalCredential } from "../run/approval-decision.ts";
import { approvalRefusedEvent } from "../run/approval-events.ts";
import { decideUnderLock } from "../run/approve-gate.ts";
import { type RerunRequest, rerunRun } from "../run/rerun-run.ts";
import { type AdmissionLimits, admitRun } from "../run/run-admission.ts";
import { computeRunStatistics, type RunStatistics } from "../run/run-statistics.ts";
import { RunScheduler } from "../run/scheduler.ts";
import { type RunState, terminalRunStates } from "../run/state-machine.ts";
import type { SecretVault } from "../secrets/secret-vault.ts";
import { decodePageToken, keysetPage } from "../store/keyset-page.ts";
import { flattenPlannedSteps, insertStepRows } from "../store/plan-rows.ts";
import { type ReadyWork, type RunRow, runColumns, type StepRow } from "../store/run-rows.ts";
import type { QueueDepth, WorkQueue } from "../worker/work-queue.ts";
import { createPlanCache } from "./plan-cache.ts";

/** A plan as the planner returns it. */
export interface PlannedPack {
  planHash: string;
  planJson: string;
  manifest: string;
  packName: string;
  packVersion: string;
  packDigest: string;
}

/** What a run is submitted with. */
export interface RunSubmission {
  tenant: string;
  /** Inline manifest or registry reference, passed to the planner as is. */
  pack: { manifest: string } | { ref: { name: string; version: string } };
  inputs: Record<string, unknown>;
  secrets: Record<string, string>;
  priority: number;
  idempotencyKey: string;
  submittedBy: string;
  labels: Record<string, string>;
  /** A delayed run: it waits, queued and holding no worker, until then. */
  notBefore?: Date;
  /** Run deadline in seconds; never more than the pack's `spec.timeout`. 0/absent: the pack's. */
  timeoutSeconds?: number;
  /** Set when a schedule made the run (the executor's scheduler only). */
  schedule?: ScheduledRun;
}

/** The schedule and due time that made a run. */
export interface ScheduledRun {
  id: string;
  dueAt: Date;
  /** Overlap policy queue: start only after the schedule's earlier runs ended. */
  afterPreviousRuns: boolean;
}

/** Asks the planner for a plan (the executor never plans by itself). */
export type PlanFetcher = (request: {
  tenant: string;
  pack: RunSubmission["pack"];
  inputs: Record<string, unknown>;
  secretNames: string[];
}) => Promise<PlannedPack>;

/**
 * Names the latest published version of the tenant's pack `name` (what a reference without a
 * version runs). Throws PACK_NOT_FOUND when the pack has no version.
 */
export type LatestVersionResolver = (tenant: string, name: string) => Promise<string>;

/** A run with its steps, attempts and gate decisions, as reads return it. */
export interface RunView {
  run: RunRow;
  /** Approval requirements from the plan. */
  approvals: { id: string; required: number; grants: string[] }[];
  steps: StepRow[];
  attempts: AttemptRow[];
  decisions: DecisionRow[];
}

export interface AttemptRow {
  run_id: string;
  step_id: string;
  attempt: number;
  state: string;
  worker_id: string;
  started_at: Date;
  finished_at: Date | null;
  exit_code: number | null;
  reason: string;
  cpu_micros: number | null;
  peak_memory_bytes: number | null;
}

export interface DecisionRow {
  step_id: string;
  approver: string;
  approved: boolean;
  comment: string;
  decided_at: Date;
}

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
  list(query: {
    tenant: string;
    states: RunState[];
    packName: string;
    pageSize: number;
    pageToken: string;
  }): Promise<{ runs: RunRow[]; nextPageToken: string }>;
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

/** An approval to decide: who vouches for it, and what it says. */
export interface ApprovalRequest {
  /** The tenant it was made in. */
  tenant: string;
  runId: string;
  credential: ApprovalCredential;
  /** The gate the caller named, if any (empty strings: none). */
  named: { gateStepId: string; approvalId: string };
  approve: boolean;
  comment: string;
  /**
   * Extra metadata of the decision's event, and of its refusal's (an offline approval's
   * verbatim response, for one).
   */
  evidence?: Record<string, string>;
}

/** An approval refused before it reached {@link RunService.decideApproval}. */
export interface ApprovalRefusal {
  tenant: string;
  runId: string;
  /** May be empty when the caller did not know which approval was meant. */
  approvalId: string;
  approver: string;
  /** Stable error code of the refusal (APPROVAL_STALE, PERMISSION_DENIED, ...). */
  code: string;
  reason: string;
  /** The gate's step id when already known; otherwise looked up from `approvalId`. */
  gateStepId?: string;
  /** Extra metadata of the refusal event (an offline response, verbatim, for one). */
  evidence?: Record<string, string>;
}

/** Timestamp columns of the child rows a run view reads as JSON. */
const stepTimestamps = [
  "ready_at",
  "next_attempt_at",
  "lease_expires_at",
  "started_at",
  "finished_at",
  "expires_at",
] as const;
const attemptTimestamps = ["started_at", "finished_at"] as const;
const decisionTimestamps = ["decided_at"] as const;

/**
 * Rows read as JSON (`to_jsonb`), typed as the driver would type them: timestamps become Dates
 * again (bigints are JSON numbers already, as the driver's int8 parser makes them).
 */
function rowsFromJson<Row>(
  rows: readonly Record<string, unknown>[],
  timestamps: readonly string[],
): Row[] {
  return rows.map((row) => {
    const typed: Record<string, unknown> = { ...row };
    for (const column of timestamps) {
      const value = row[column];
      if (typeof value === "string") typed[column] = new Date(value);
    }
    return typed as Row;
  });
}

/** Resolves like `promise`, or rejects after `ms` (the promise itself goes on in the background). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Redis being down must not hold a submission: the run is stored and queued later, or (when
// it carries secrets, which only Redis may hold) refused as retryable.
const queueTimeoutMs = 2000;
const vaultTimeoutMs = 3000;

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * What identifies a submission for its idempotency key: the pack source (inline manifest text
 * or registry reference) and the inputs as sent. Secrets are left out on purpose (a digest of a
 * secret stored in PostgreSQL could be guessed offline), and so are labels and priority.
 */
function requestDigest(submission: RunSubmission): string {
  return sha256Digest(canonicalJson({ pack: submission.pack, inputs: submission.inputs }));
}

/**
 * The run's deadline in seconds: the submission's, which may shorten the pack's `spec.timeout`
 * but never lengthen it, else the pack's; 0 = none.
 */
export function effectiveTimeout(
  requested: number | undefined,
  packTimeout: number | undefined,
): number {
  const pack = packTimeout === undefined ? 0 : Math.ceil(packTimeout);
  if (requested === undefined || requested === 0) return pack;
  if (!Number.isInteger(requested) || requested < 0)
    throw new PackrunError("REQUEST_INVALID", "timeout must be a whole number of seconds");
  if (pack > 0 && requested > pack)
    throw new PackrunError(
      "REQUEST_INVALID",
      `timeout ${requested}s is longer than the pack's spec.timeout of ${pack}s; a submission may only shorten the run deadline`,
    );
  return requested;
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

  /**
   * Reads a run with its steps, attempts and decisions through `tx`, in one statement (so in
   * one snapshot: read separately, a step could show its retry pending while its failed attempt
   * still looked unfinished). The child rows travel as JSON; {@link rowsFromJson} restores
   * their timestamps.
   */
  const readView = async (tx: Queryable, tenant: string, runId: string): Promise<RunView> => {
    const row = (
      await tx.query<
        RunRow & {
          approvals: RunView["approvals"];
          steps_json: Record<string, unknown>[];
          attempts_json: Record<string, unknown>[];
          decisions_json: Record<string, unknown>[];
        }
      >(
        `SELECT ${runColumns}, (plan_json::jsonb)->'approvals' AS approvals,
                coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.parent_id NULLS FIRST, s.position)
                            FROM steps s WHERE s.run_id = r.id), '[]') AS steps_json,
                coalesce((SELECT jsonb_agg(to_jsonb(a) ORDER BY a.step_id, a.attempt)
                            FROM step_attempts a WHERE a.run_id = r.id), '[]') AS attempts_json,
                coalesce((SELECT jsonb_agg(to_jsonb(d) ORDER BY d.decided_at)
                            FROM gate_decisions d WHERE d.run_id = r.id), '[]') AS decisions_json
           FROM runs r WHERE id = $1 AND tenant = $2`,
        [runId, tenant],
      )
    ).rows[0];
    if (row === undefined) throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
    const { approvals, steps_json, attempts_json, decisions_json, ...run } = row;
    return {
      run,
      approvals,
      steps: rowsFromJson<StepRow>(steps_json, stepTimestamps),
      attempts: rowsFromJson<AttemptRow>(attempts_json, attemptTimestamps),
      decisions: rowsFromJson<DecisionRow>(decisions_json, decisionTimestamps),
    };
  };

  const view = async (tenant: string, runId: string): Promise<RunView> => {
    if (!uuid.test(runId)) throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
    return readView(database, tenant, runId);
  };

  const recordApprovalRefusal = async (refusal: ApprovalRefusal) => {
    if (!uuid.test(refusal.runId))
      throw new PackrunError("RUN_NOT_FOUND", `run ${refusal.runId} not found`);
    const recorded = await database.transaction(async (tx) => {
      // The run's lock orders this event with the run's terminal event (recorded under it).
      const scheduler = await RunScheduler.lock(tx, refusal.runId, refusal.tenant);
      if (scheduler === undefined)
        throw new PackrunError("RUN_NOT_FOUND", `run ${refusal.runId} not found`);
      if (terminalRunStates.has(scheduler.run.state)) return false;
      // A step id from the caller counts only if it is an approval gate of this run.
      const namedGate =
        refusal.gateStepId === undefined
          ? undefined
          : (
              await tx.query<{ step_id: string }>(
                "SELECT step_id FROM steps WHERE run_id = $1 AND kind = 'approval-gate' AND step_id = $2",
                [refusal.runId, refusal.gateStepId],
              )
            ).rows[0]?.step_id;
      const stepId =
        namedGate ??
        (refusal.approvalId === ""
          ? undefined
          : (
              await tx.query<{ step_id: string }>(
                "SELECT step_id FROM steps WHERE run_id = $1 AND kind = 'approval-gate' AND planned->'gate'->>'approvalId' = $2 ORDER BY (state = 'awaiting-approval') DESC, position LIMIT 1",
                [refusal.runId, refusal.approvalId],
              )
            ).rows[0]?.step_id);
      await scheduler.events([
        approvalRefusedEvent({
          runId: refusal.runId,
          approver: refusal.approver,
          approvalId: refusal.approvalId,
          code: refusal.code,
          reason: refusal.reason,
          stepId,
          evidence: refusal.evidence,
        }),
      ]);
      return true;
    });
    const fields = {
      runId: refusal.runId,
      tenant: refusal.tenant,
      approver: refusal.approver,
      approvalId: refusal.approvalId,
      code: refusal.code,
      reason: refusal.reason,
    };
    if (recorded) logger.warn(fields, "approval refused; recorded in the run's evidence");
    else logger.warn(fields, "approval refused for a run that already ended; not recorded");
    return { recorded };
  };

  /**
   * The run already submitted with this idempotency key, if any. The same key with another
   * request (pack source or inputs) is refused: answering with the old run would let a client
   * believe its new request ran.
   */
  const runWithIdempotencyKey = async (
    submission: RunSubmission,
    digest: string,
  ): Promise<string | undefined> => {
    const existing = (
      await database.query<{ id: string; request_digest: string | null }>(
        "SELECT id, request_digest FROM runs WHERE tenant = $1 AND idempotency_key = $2",
        [submission.tenant, submission.idempotencyKey],
      )
    ).rows[0];
    if (existing === undefined) return undefined;
    if (existing.request_digest !== null && existing.request_digest !== digest) {
      throw new PackrunError(
        "IDEMPOTENCY_KEY_REUSED",
        `idempotencyKey ${JSON.stringify(submission.idempotencyKey)} was already used for run ${existing.id} with a different manifest, pack reference or inputs; use a new key for a new request`,
      );
    }
    return existing.id;
  };

  return {
    enqueue,
    get: view,
    recordApprovalRefusal,

    async rerun(request) {
      const runId = await rerunRun(
        {
          database,
          enqueue,
          logger,
          async putSecrets(runId, secrets) {
            try {
              await withTimeout(vault.put(runId, secrets), vaultTimeoutMs, "the secret store");
            } catch (cause) {
              throw new PackrunError(
                "UNAVAILABLE",
                "the secret store is unavailable; nothing was stored, retry later",
                { cause },
              );
            }
          },
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

    async submit(submission) {
      const digest = requestDigest(submission);
      if (submission.idempotencyKey !== "") {
        const existing = await runWithIdempotencyKey(submission, digest);
        if (existing !== undefined)
          return { view: await view(submission.tenant, existing), created: false };
      }
      const { planned, plan } = await planFor({
        tenant: submission.tenant,
        pack: submission.pack,
        inputs: submission.inputs,
        secretNames: Object.keys(submission.secrets),
      });
      const missing = plan.secrets.filter((name) => !Object.hasOwn(submission.secrets, name));
      const extra = Object.keys(submission.secrets).filter((name) => !plan.secrets.includes(name));
      if (missing.length > 0 || extra.length > 0) {
        const parts = [
          ...missing.map((name) => `secret "${name}" is declared but not supplied`),
          ...extra.map((name) => `secret "${name}" is not declared by the pack`),
        ];
        throw new PackrunError(
          missing.length > 0 ? "SECRET_MISSING" : "SECRET_UNDECLARED",
          parts.join("; "),
        );
      }
      const timeoutSeconds = effectiveTimeout(submission.timeoutSeconds, plan.timeoutSeconds);
      const runId = randomUUID();
      try {
        await withTimeout(vault.put(runId, submission.secrets), vaultTimeoutMs, "the secret store");
      } catch (cause) {
        throw new PackrunError(
          "UNAVAILABLE",
          "the secret store is unavailable; nothing was stored, retry later",
          { cause },
        );
      }
      let ready: ReadyWork[] = [];
      let submitted: RunView;
      try {
        [ready, submitted] = await database.transaction(async (tx) => {
          const inserted = await tx.query<RunRow>(
            `INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, secret_names, priority, submitted_by, labels, idempotency_key, has_approvals, request_digest,
                               not_before, timeout_seconds, schedule_id, scheduled_for, after_schedule_runs, has_outputs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
             RETURNING ${runColumns}`,
            [
              runId,
              submission.tenant,
              planned.packName,
              planned.packVersion,
              planned.packDigest,
              planned.planHash,
              planned.planJson,
              planned.manifest,
              JSON.stringify(plan.inputs),
              plan.secrets,
              submission.priority,
              submission.submittedBy,
              JSON.stringify(submission.labels),
              submission.idempotencyKey === "" ? null : submission.idempotencyKey,
              plan.approvals.length > 0,
              submission.idempotencyKey === "" ? null : digest,
              submission.notBefore ?? null,
              timeoutSeconds,
              submission.schedule?.id ?? null,
              submission.schedule?.dueAt ?? null,
              submission.schedule?.afterPreviousRuns ?? false,
              plan.outputs.length > 0,
            ],
          );
          await insertStepRows(
            tx,
            { id: runId, tenant: submission.tenant },
            flattenPlannedSteps(plan.steps),
          );
          const run = inserted.rows[0];
          if (run === undefined)
            throw new PackrunError("INTERNAL", "run vanished during submission");
          // The row this transaction inserted is invisible to others until COMMIT: no lock needed.
          const scheduler = RunScheduler.forInserted(tx, run);
          await scheduler.events([
            {
              type: "run.queued",
              level: "info",
              message: `run of ${planned.packName}@${planned.packVersion} queued`,
              metadata: {
                planHash: planned.planHash,
                submittedBy: submission.submittedBy,
                priority: submission.priority,
                ...(submission.notBefore === undefined
                  ? {}
                  : { notBefore: submission.notBefore.toISOString() }),
                ...(timeoutSeconds === 0 ? {} : { timeoutSeconds }),
                ...(submission.schedule === undefined
                  ? {}
                  : {
                      scheduleId: submission.schedule.id,
                      scheduledFor: submission.schedule.dueAt.toISOString(),
                    }),
              },
              idempotencyKey: `${runId}/run/queued`,
            },
          ]);
          // Starts now unless it is delayed, queued behind its schedule or over its user's limit.
          await admitRun(tx, scheduler, admission);
          // The run as this transaction leaves it, read before the commit: no second round of
          // queries after it.
          return [scheduler.ready, await readView(tx, submission.tenant, runId)] as const;
        });
      } catch (error) {
        void vault.delete(runId).catch(() => {});
        // A concurrent submission with the same idempotency key won the race: return it.
        if ((error as { code?: string }).code === "23505" && submission.idempotencyKey !== "") {
          const existing = await runWithIdempotencyKey(submission, digest);
          if (existing !== undefined)
            return { view: await view(submission.tenant, existing), created: false };
        }
        throw error;
      }
      await enqueue(ready);
      logger.info(
        {
          runId,
          tenant: submission.tenant,
          pack: `${planned.packName}@${planned.packVersion}`,
          planHash: planned.planHash,
        },
        "run submitted",
      );
      return { view: submitted, created: true };
    },

    async list(query) {
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
    },

    async cancel(tenant, runId, reason, requestedBy) {
      if (!uuid.test(runId)) throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
      await database.transaction(async (tx) => {
        const scheduler = await RunScheduler.lock(tx, runId, tenant);
        if (scheduler === undefined)
          throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
        if (terminalRunStates.has(scheduler.run.state)) return;
        await scheduler.endRun(
          "cancelled",
          reason === "" ? `cancelled by ${requestedBy || "a user"}` : reason,
          "cancelled",
        );
      });
      logger.info({ runId, tenant, requestedBy }, "run cancelled");
      return view(tenant, runId);
    },

    async decideApproval(request) {
      if (!uuid.test(request.runId))
        throw new PackrunError("RUN_NOT_FOUND", `run ${request.runId} not found`);
      const outcome = await database.transaction(async (tx) => {
        const scheduler = await RunScheduler.lock(tx, request.runId, request.tenant);
        if (scheduler === undefined)
          throw new PackrunError("RUN_NOT_FOUND", `run ${request.runId} not found`);
        const decision = await decideUnderLock(tx, scheduler, request);
        if (decision.kind === "refuse") {
          // Recorded under the lock that orders it with the run's terminal event; a run that
          // ended takes no more events, so its refusals are only logged.
          const recorded = !terminalRunStates.has(scheduler.run.state);
          if (recorded)
            await scheduler.events([
              approvalRefusedEvent({
                runId: request.runId,
                approver: decision.approver,
                approvalId: decision.approvalId,
                code: decision.code,
                reason: decision.reason,
                stepId: decision.gateStepId,
                evidence: request.evidence,
              }),
            ]);
          return { refused: decision, recorded };
        }
        return {
          gateStepId: decision.gate.stepId,
          recorded: decision.newApprover,
          ready: scheduler.ready,
        };
      });
      if ("refused" in outcome) {
        const { refused } = outcome;
        logger.warn(
          {
            runId: request.runId,
            tenant: request.tenant,
            approver: refused.approver,
            approvalId: refused.approvalId,
            code: refused.code,
            reason: refused.reason,
          },
          outcome.recorded
            ? "approval refused; recorded in the run's evidence"
            : "approval refused for a run that already ended; not recorded",
        );
        throw new PackrunError(refused.code, refused.reason);
      }
      await enqueue(outcome.ready);
      return {
        view: await view(request.tenant, request.runId),
        gateStepId: outcome.gateStepId,
        recorded: outcome.recorded,
      };
    },
  };
}
