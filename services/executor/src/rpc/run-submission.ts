import { randomUUID } from "node:crypto";
import type { Database, Queryable, Transaction } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { canonicalJson, type Plan, sha256Digest } from "@packrun/planning";
import { type AdmissionLimits, admitRun } from "../run/run-admission.ts";
import { RunScheduler } from "../run/scheduler.ts";
import type { SecretVault } from "../secrets/secret-vault.ts";
import {
  flattenPlannedSteps,
  insertStepRows,
  insertStepRowsSql,
  stepRowsPerStatement,
} from "../store/plan-rows.ts";
import type { RunEvent } from "../store/run-events.ts";
import { type ReadyWork, type RunRow, runColumns } from "../store/run-rows.ts";
import type { VerifiedPlan } from "./plan-cache.ts";
import { type RunView, readRunView } from "./run-view.ts";
import { putRunSecrets } from "./with-timeout.ts";

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

/** What {@link submitRun} works with. */
export interface SubmitContext {
  database: Database;
  vault: SecretVault;
  logger: Logger;
  admission: AdmissionLimits;
  /** The plan of a submission (cached by request; see plan-cache.ts). */
  planFor: (request: Parameters<PlanFetcher>[0]) => Promise<VerifiedPlan>;
  /** Queues steps after the commit; never throws. */
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>;
}

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

/** Throws SECRET_MISSING / SECRET_UNDECLARED unless the secrets sent are those the plan names. */
function checkSecrets(plan: Plan, secrets: Readonly<Record<string, string>>): void {
  const missing = plan.secrets.filter((name) => !Object.hasOwn(secrets, name));
  const extra = Object.keys(secrets).filter((name) => !plan.secrets.includes(name));
  if (missing.length === 0 && extra.length === 0) return;
  const parts = [
    ...missing.map((name) => `secret "${name}" is declared but not supplied`),
    ...extra.map((name) => `secret "${name}" is not declared by the pack`),
  ];
  throw new PackrunError(
    missing.length > 0 ? "SECRET_MISSING" : "SECRET_UNDECLARED",
    parts.join("; "),
  );
}

/**
 * The run already submitted with this idempotency key, if any. The same key with another
 * request (pack source or inputs) is refused: answering with the old run would let a client
 * believe its new request ran.
 */
async function runWithIdempotencyKey(
  db: Queryable,
  submission: RunSubmission,
  digest: string,
): Promise<string | undefined> {
  const existing = (
    await db.query<{ id: string; request_digest: string | null }>(
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
}

/**
 * A new run's row, as planned, and the first {@link stepRowsPerStatement} rows of its steps
 * ($23, as JSON) in the same statement (the steps' inserts see the run's row: foreign keys are
 * checked at the statement's end).
 */
const insertRunStatement = `
WITH run AS (
  INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, secret_names, priority, submitted_by, labels, idempotency_key, has_approvals, request_digest,
                    not_before, timeout_seconds, schedule_id, scheduled_for, after_schedule_runs, has_outputs)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
  RETURNING ${runColumns}
), steps AS (
  ${insertStepRowsSql(1, 2, 23)}
)
SELECT * FROM run`;

/** A submission on its way into the database. */
interface NewRun {
  runId: string;
  submission: RunSubmission;
  verified: VerifiedPlan;
  digest: string;
  timeoutSeconds: number;
}

/** Inserts the run's row and its steps' rows (one statement up to 500 steps); returns the run row. */
async function insertRun(tx: Transaction, fresh: NewRun): Promise<RunRow> {
  const { runId, submission, digest, timeoutSeconds } = fresh;
  const { planned, plan } = fresh.verified;
  const keyed = submission.idempotencyKey !== "";
  const steps = flattenPlannedSteps(plan.steps);
  const inserted = await tx.query<RunRow>(insertRunStatement, [
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
    keyed ? submission.idempotencyKey : null,
    plan.approvals.length > 0,
    keyed ? digest : null,
    submission.notBefore ?? null,
    timeoutSeconds,
    submission.schedule?.id ?? null,
    submission.schedule?.dueAt ?? null,
    submission.schedule?.afterPreviousRuns ?? false,
    plan.outputs.length > 0,
    JSON.stringify(steps.slice(0, stepRowsPerStatement)),
  ]);
  await insertStepRows(
    tx,
    { id: runId, tenant: submission.tenant },
    steps.slice(stepRowsPerStatement),
  );
  const run = inserted.rows[0];
  if (run === undefined) throw new PackrunError("INTERNAL", "run vanished during submission");
  return run;
}

/** The run's first event. */
function queuedEvent(fresh: NewRun): RunEvent {
  const { runId, submission, timeoutSeconds } = fresh;
  const { planned } = fresh.verified;
  return {
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
  };
}

/**
 * Stores the run in one transaction (row, steps, queued event, admission). Returns the steps
 * to queue once it committed.
 */
function storeRun(context: SubmitContext, fresh: NewRun): Promise<ReadyWork[]> {
  return context.database.transaction(async (tx) => {
    const run = await insertRun(tx, fresh);
    // The row this transaction inserted is invisible to others until COMMIT: no lock needed.
    const scheduler = RunScheduler.forInserted(tx, run);
    await scheduler.events([queuedEvent(fresh)]);
    // Starts now unless it is delayed, queued behind its schedule or over its user's limit.
    await admitRun(tx, scheduler, context.admission);
    return scheduler.ready;
  });
}

/**
 * Submits a run: plans it (or reuses the plan), checks its secrets, stores the secrets, then
 * the run; the run is committed before this returns, and its ready steps are queued after the
 * commit. A submission repeating an idempotency key gets the existing run (`created: false`).
 */
export async function submitRun(
  context: SubmitContext,
  submission: RunSubmission,
): Promise<{ view: RunView; created: boolean }> {
  const { database, vault, logger } = context;
  // Only a keyed submission stores (and compares) its request's digest.
  const digest = submission.idempotencyKey === "" ? "" : requestDigest(submission);
  const existingRun = async () => {
    const existing = await runWithIdempotencyKey(database, submission, digest);
    return existing === undefined
      ? undefined
      : { view: await readRunView(database, submission.tenant, existing), created: false };
  };
  if (submission.idempotencyKey !== "") {
    const existing = await existingRun();
    if (existing !== undefined) return existing;
  }
  const verified = await context.planFor({
    tenant: submission.tenant,
    pack: submission.pack,
    inputs: submission.inputs,
    secretNames: Object.keys(submission.secrets),
  });
  checkSecrets(verified.plan, submission.secrets);
  const timeoutSeconds = effectiveTimeout(submission.timeoutSeconds, verified.plan.timeoutSeconds);
  const fresh: NewRun = { runId: randomUUID(), submission, verified, digest, timeoutSeconds };
  await putRunSecrets(vault, fresh.runId, submission.secrets);
  let ready: ReadyWork[];
  try {
    ready = await storeRun(context, fresh);
  } catch (error) {
    void vault.delete(fresh.runId).catch(() => {});
    // A concurrent submission with the same idempotency key won the race: return it.
    if ((error as { code?: string }).code === "23505" && submission.idempotencyKey !== "") {
      const existing = await existingRun();
      if (existing !== undefined) return existing;
    }
    throw error;
  }
  // The run is committed: its first steps go to the queue at once (a worker may start them
  // while the answer's view is still being read; the view is one snapshot either way). Should
  // that read fail, the caller sees an error for a stored run, as after a lost answer: its
  // idempotency key finds the run on retry.
  const [submitted] = await Promise.all([
    readRunView(database, submission.tenant, fresh.runId),
    context.enqueue(ready),
  ]);
  const { planned } = verified;
  logger.info(
    {
      runId: fresh.runId,
      tenant: submission.tenant,
      pack: `${planned.packName}@${planned.packVersion}`,
      planHash: planned.planHash,
    },
    "run submitted",
  );
  return { view: submitted, created: true };
}
