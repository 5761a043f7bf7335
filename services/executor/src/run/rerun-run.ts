import { randomUUID } from "node:crypto";
import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { Plan } from "@packrun/planning";
import { flattenPlannedSteps, insertStepRows } from "../store/plan-rows.ts";
import type { ReadyWork, RunRow, StepRow } from "../store/run-rows.ts";
import { RunScheduler } from "./scheduler.ts";
import { terminalRunStates } from "./state-machine.ts";

/** How a run is made from an earlier one: every step again, or keeping what succeeded. */
export type RerunMode = "rerun" | "resume";

/** What RerunRun asks for. */
export interface RerunRequest {
  tenant: string;
  runId: string;
  mode: RerunMode;
  /** Secret values for the new run; never copied from the original. */
  secrets: Record<string, string>;
  submittedBy: string;
  /**
   * A dead-letter re-drive (resume only): these steps run again even when a block around them
   * succeeded (continueOnError), so a run that succeeded may be re-driven too. `record` runs in
   * the new run's transaction (to mark the dead letters), `metadata` joins the `run.rerun` event.
   */
  redrive?: {
    stepIds: readonly string[];
    metadata: Record<string, unknown>;
    record(tx: Queryable, newRunId: string): Promise<void>;
  };
}

/** What {@link rerunRun} needs from the run service. */
export interface RerunDependencies {
  database: Database;
  /** Stores the new run's secrets (with the run service's timeout and error). */
  putSecrets(runId: string, secrets: Record<string, string>): Promise<void>;
  deleteSecrets(runId: string): Promise<void>;
  enqueue(ready: readonly ReadyWork[]): Promise<void>;
  logger: Logger;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The steps a resume keeps: every step that succeeded, with everything below it (a succeeded
 * block's children, a run-time map's expanded children included, whatever their state).
 */
export function keptStepIds(
  steps: readonly Pick<StepRow, "step_id" | "parent_id" | "state">[],
  runAgain: readonly string[] = [],
): string[] {
  const byId = new Map(steps.map((step) => [step.step_id, step]));
  const parentOf = (step: Pick<StepRow, "parent_id">) =>
    step.parent_id === null ? undefined : byId.get(step.parent_id);
  // Steps that must run again, and every block around them (which then runs again too, keeping
  // its other children that succeeded).
  const excluded = new Set<string>();
  for (const id of runAgain)
    for (let current = byId.get(id); current !== undefined; current = parentOf(current))
      excluded.add(current.step_id);
  const kept = (step: Pick<StepRow, "step_id" | "parent_id" | "state">): boolean => {
    for (let current: typeof step | undefined = step; current !== undefined; ) {
      if (excluded.has(current.step_id)) return false;
      if (current.state === "succeeded") return true;
      current = parentOf(current);
    }
    return false;
  };
  return steps.filter(kept).map((step) => step.step_id);
}

function checkSecrets(declared: readonly string[], supplied: Record<string, string>): void {
  const missing = declared.filter((name) => !Object.hasOwn(supplied, name));
  const extra = Object.keys(supplied).filter((name) => !declared.includes(name));
  if (missing.length === 0 && extra.length === 0) return;
  const parts = [
    ...missing.map(
      (name) =>
        `secret "${name}" is declared but not supplied (a rerun never reuses the original run's secrets)`,
    ),
    ...extra.map((name) => `secret "${name}" is not declared by the pack`),
  ];
  throw new PackrunError(
    missing.length > 0 ? "SECRET_MISSING" : "SECRET_UNDECLARED",
    parts.join("; "),
  );
}

/**
 * Starts a new run from a finished run of the same tenant: the same stored plan (so the same
 * plan hash) and inputs, the caller's secrets. A resume copies the steps {@link keptStepIds}
 * picks, results and outputs included, so the scheduler goes on from the first step that did
 * not succeed. The new run names the original (`rerun_of`, `rerun_mode`) and its event log
 * opens with a `run.rerun` event saying so. Returns the new run's id.
 * @throws PackrunError RUN_NOT_FOUND (unknown, or another tenant's), RUN_NOT_FINISHED,
 *   RUN_NOT_RESUMABLE (resume of a run that succeeded), SECRET_MISSING, SECRET_UNDECLARED
 */
export async function rerunRun(deps: RerunDependencies, request: RerunRequest): Promise<string> {
  const { database } = deps;
  if (!uuid.test(request.runId))
    throw new PackrunError("RUN_NOT_FOUND", `run ${request.runId} not found`);
  const original = (
    await database.query<
      Pick<RunRow, "id" | "state" | "pack_name" | "pack_version" | "priority"> & {
        plan_json: string;
        running_steps: number;
      }
    >(
      `SELECT id, state, pack_name, pack_version, priority, plan_json,
              (SELECT count(*)::int FROM steps s WHERE s.run_id = r.id AND s.state = 'running') AS running_steps
         FROM runs r WHERE id = $1 AND tenant = $2`,
      [request.runId, request.tenant],
    )
  ).rows[0];
  if (original === undefined)
    throw new PackrunError("RUN_NOT_FOUND", `run ${request.runId} not found`);
  if (!terminalRunStates.has(original.state) || original.running_steps > 0) {
    const still =
      original.running_steps > 0 && terminalRunStates.has(original.state)
        ? `is ${original.state} but ${original.running_steps} of its steps are still stopping`
        : `is still ${original.state}`;
    throw new PackrunError(
      "RUN_NOT_FINISHED",
      `run ${original.id} ${still}; only a finished run can be ${request.mode === "resume" ? "resumed" : "rerun"}`,
    );
  }
  if (request.mode === "resume" && original.state === "succeeded" && request.redrive === undefined)
    throw new PackrunError(
      "RUN_NOT_RESUMABLE",
      `run ${original.id} succeeded: there is nothing to resume; rerun it to run every step again`,
    );
  const plan = JSON.parse(original.plan_json) as Plan;
  checkSecrets(plan.secrets, request.secrets);

  const runId = randomUUID();
  await deps.putSecrets(runId, request.secrets);
  let ready: ReadyWork[];
  try {
    ready = await database.transaction(async (tx) => {
      // Copied row to row: the new run has exactly the original's plan, hash and inputs.
      await tx.query(
        `INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, secret_names, priority, submitted_by, labels, has_approvals, has_outputs, rerun_of, rerun_mode)
         SELECT $1, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, secret_names, priority, $3, labels, has_approvals, has_outputs, id, $4
           FROM runs WHERE id = $2`,
        [runId, original.id, request.submittedBy, request.mode],
      );
      const kept =
        request.mode === "resume"
          ? await keptSteps(tx, original.id, request.redrive?.stepIds ?? [])
          : new Set<string>();
      await insertStepRows(
        tx,
        { id: runId, tenant: request.tenant },
        flattenPlannedSteps(plan.steps).filter((row) => !kept.has(row.step_id)),
      );
      if (kept.size > 0) await copyKeptSteps(tx, original.id, runId, [...kept]);
      const scheduler = await RunScheduler.lock(tx, runId);
      if (scheduler === undefined) throw new PackrunError("INTERNAL", "run vanished during rerun");
      await request.redrive?.record(tx, runId);
      const how =
        request.redrive !== undefined
          ? `re-drive of dead-lettered step(s) ${request.redrive.stepIds.join(", ")} of run ${original.id}, keeping ${kept.size} succeeded step(s)`
          : request.mode === "resume"
            ? `resumed from run ${original.id}, keeping ${kept.size} succeeded step(s)`
            : `rerun of run ${original.id}`;
      await scheduler.events([
        {
          type: "run.queued",
          level: "info",
          message: `run of ${original.pack_name}@${original.pack_version} queued (${how})`,
          metadata: {
            planHash: scheduler.run.plan_hash,
            submittedBy: request.submittedBy,
            priority: scheduler.run.priority,
          },
          idempotencyKey: `${runId}/run/queued`,
        },
        {
          type: "run.rerun",
          level: "info",
          message: how,
          metadata: {
            rerunOf: original.id,
            mode: request.mode,
            keptSteps: [...kept].slice(0, 1000),
            ...request.redrive?.metadata,
          },
          idempotencyKey: `${runId}/run/rerun`,
        },
      ]);
      await scheduler.startRun();
      return scheduler.ready;
    });
  } catch (error) {
    void deps.deleteSecrets(runId).catch(() => {});
    throw error;
  }
  await deps.enqueue(ready);
  deps.logger.info(
    { runId, tenant: request.tenant, rerunOf: original.id, mode: request.mode },
    request.mode === "resume" ? "run resumed" : "run rerun",
  );
  return runId;
}

async function keptSteps(
  tx: Queryable,
  runId: string,
  runAgain: readonly string[],
): Promise<Set<string>> {
  const steps = (
    await tx.query<Pick<StepRow, "step_id" | "parent_id" | "state">>(
      "SELECT step_id, parent_id, state FROM steps WHERE run_id = $1",
      [runId],
    )
  ).rows;
  return new Set(keptStepIds(steps, runAgain));
}

/** Copies the kept steps' rows (results, outputs, timings) into the new run, saying so. */
async function copyKeptSteps(
  tx: Queryable,
  from: string,
  to: string,
  stepIds: readonly string[],
): Promise<void> {
  await tx.query(
    `INSERT INTO steps (run_id, tenant, step_id, parent_id, position, kind, state, planned, bindings, attempt, max_attempts, failed_attempts, lost_attempts, ready_at, exit_code, reason, outputs, started_at, finished_at, kept_from)
     SELECT $2, tenant, step_id, parent_id, position, kind, state, planned, bindings, attempt, max_attempts, failed_attempts, lost_attempts, ready_at, exit_code,
            CASE WHEN reason = '' THEN $4 ELSE reason || ' (' || $4 || ')' END, outputs, started_at, finished_at, $1
       FROM steps WHERE run_id = $1 AND step_id = ANY($3)`,
    [from, to, stepIds, `kept from run ${from}`],
  );
}

/** A run's links to the run it was made from and to the runs made from it. */
export interface RunLinks {
  rerunOf: { runId: string; mode: RerunMode } | null;
  reruns: { runId: string; mode: RerunMode }[];
}

/** Reads a run's rerun links (within its tenant). */
export async function loadRunLinks(
  db: Queryable,
  tenant: string,
  runId: string,
): Promise<RunLinks> {
  const rows = (
    await db.query<{ id: string; rerun_of: string | null; rerun_mode: RerunMode | null }>(
      `SELECT id, rerun_of, rerun_mode FROM runs WHERE id = $1 AND tenant = $2
       UNION ALL
       (SELECT id, rerun_of, rerun_mode FROM runs WHERE rerun_of = $1 AND tenant = $2 ORDER BY created_at, id)`,
      [runId, tenant],
    )
  ).rows;
  const self = rows[0];
  return {
    rerunOf:
      self?.id === runId && self.rerun_of !== null && self.rerun_mode !== null
        ? { runId: self.rerun_of, mode: self.rerun_mode }
        : null,
    reruns: rows
      .filter((row) => row.rerun_of === runId && row.rerun_mode !== null)
      .map((row) => ({ runId: row.id, mode: row.rerun_mode as RerunMode })),
  };
}
