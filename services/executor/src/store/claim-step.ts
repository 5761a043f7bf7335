import type { Queryable } from "@packrun/db";
import type { stepEvent } from "../run/scheduler.ts";
import type { WorkItem } from "../worker/work-queue.ts";
import { type RunRow, runColumns, type StepRow } from "./run-rows.ts";

/** A step this worker claimed, with its run. */
export interface ClaimedStep {
  run: RunRow;
  step: StepRow;
  fence: number;
  /** What the run's stored plan text hashes to at claim time (checked against plan_hash). */
  storedPlanHash: string;
  /** The stored plan text, when the claim asked for it (a worker without the plan cached). */
  planText?: string;
}

/**
 * Claims a pending step: new fence and lease, an attempt row, the `step.running` event in the
 * outbox (the same event {@link stepEvent} makes for a pending → running transition; a test
 * holds the two together), and the run's columns (prefixed `run.`) with the hash of its stored
 * plan text, and the text itself when asked ($5), so the plan check costs no second query.
 */
export const claimStepStatement = `
WITH claimed AS (
  UPDATE steps s SET state = 'running', attempt = attempt + 1, fence = fence + 1,
         lease_owner = $3, lease_expires_at = now() + make_interval(secs => $4),
         started_at = coalesce(started_at, now()), next_attempt_at = NULL
   WHERE run_id = $1 AND step_id = $2 AND state = 'pending' AND ready_at <= now() AND kind = 'run'
     AND EXISTS (SELECT 1 FROM runs r WHERE r.id = s.run_id AND r.state IN ('running', 'awaiting-approval'))
  RETURNING *
), attempt AS (
  INSERT INTO step_attempts (run_id, step_id, attempt, state, worker_id, fence)
  SELECT run_id, step_id, attempt, 'running', $3, fence FROM claimed
), event AS (
  INSERT INTO outbox (run_id, idempotency_key, event)
  SELECT c.run_id, e.key, jsonb_build_object(
           'type', 'step.running', 'level', 'info', 'stepId', c.step_id,
           'message', CASE WHEN c.reason = '' THEN 'step running' ELSE c.reason END,
           'metadata', jsonb_build_object('from', 'pending', 'to', 'running', 'attempt', c.attempt)
             || CASE WHEN c.exit_code IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('exitCode', c.exit_code) END,
           'idempotencyKey', e.key, 'runId', c.run_id, 'tenant', c.tenant,
           'time', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    FROM claimed c, LATERAL (SELECT c.run_id || '/' || c.step_id || '/running/' || c.attempt || '/' || c.fence AS key) e
  ON CONFLICT (idempotency_key) DO NOTHING
)
SELECT c.*, ${runColumns
  .split(", ")
  .map((column) => `r.${column} AS "run.${column}"`)
  .join(", ")},
       'sha256:' || encode(sha256(convert_to(r.plan_json, 'UTF8')), 'hex') AS stored_plan_hash,
       CASE WHEN $5 THEN r.plan_json END AS stored_plan_text
  FROM claimed c JOIN runs r ON r.id = c.run_id`;

/**
 * Claims a queued step for `workerId` with a lease of `leaseMs` (with the run's plan text when
 * `withPlanText`), in one statement (so it needs
 * no transaction of its own). Undefined when the step is not claimable now: already claimed,
 * not ready yet, not a `run` step, or its run is no longer active.
 */
export async function claimStep(
  db: Queryable,
  item: Pick<WorkItem, "runId" | "stepId">,
  workerId: string,
  leaseMs: number,
  withPlanText = false,
): Promise<ClaimedStep | undefined> {
  const row = (
    await db.query<
      Record<string, unknown> & { stored_plan_hash: string; stored_plan_text: string | null }
    >(claimStepStatement, [item.runId, item.stepId, workerId, leaseMs / 1000, withPlanText])
  ).rows[0];
  if (row === undefined) return undefined;
  const { stored_plan_hash: storedPlanHash, stored_plan_text: planText, ...columns } = row;
  const run: Record<string, unknown> = {};
  const step: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(columns)) {
    if (column.startsWith("run.")) run[column.slice("run.".length)] = value;
    else step[column] = value;
  }
  const claimed = step as unknown as StepRow;
  return {
    run: run as unknown as RunRow,
    step: claimed,
    fence: claimed.fence,
    storedPlanHash,
    ...(planText === null ? {} : { planText }),
  };
}
