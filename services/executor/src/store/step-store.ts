import type { Queryable } from "@packrun/db";
import type { StepState } from "../run/state-machine.ts";
import type { StepChange } from "../run/step-change.ts";
import type { StepRow } from "./run-rows.ts";

/**
 * Applies a {@link StepChange} to one step, only if the step is still in the state the change
 * was decided from (a concurrent claim or sweep may have moved it). One fixed statement for
 * every change: a flag or a NULL parameter keeps a column as it is, so a column that does not
 * change is written with its own value and an update that touches no indexed column stays a
 * HOT update. Times come from the database clock.
 *   $1 run, $2 step, $3 new state, $4 expected state, $5 reason, $6 set exit code?, $7 exit code,
 *   $8 outputs, $9 failed attempts, $10 lost attempts, $11 started?, $12 finished?,
 *   $13 ready in s, $14 retry in s, $15 set expiry?, $16 expires in s, $17 release lease?,
 *   $18 new fence?
 */
export const updateStepStatement = `
UPDATE steps SET state = $3,
       reason = coalesce($5, reason),
       exit_code = CASE WHEN $6 THEN $7::integer ELSE exit_code END,
       outputs = coalesce($8::jsonb, outputs),
       failed_attempts = coalesce($9::integer, failed_attempts),
       lost_attempts = coalesce($10::integer, lost_attempts),
       started_at = CASE WHEN $11 THEN now() ELSE started_at END,
       finished_at = CASE WHEN $12 THEN now() ELSE finished_at END,
       ready_at = CASE WHEN $13::float8 IS NULL THEN ready_at ELSE now() + make_interval(secs => $13::float8) END,
       next_attempt_at = CASE WHEN $14::float8 IS NULL THEN next_attempt_at ELSE now() + make_interval(secs => $14::float8) END,
       expires_at = CASE WHEN NOT $15 THEN expires_at WHEN $16::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $16::float8) END,
       lease_owner = CASE WHEN $17 THEN NULL ELSE lease_owner END,
       lease_expires_at = CASE WHEN $17 THEN NULL ELSE lease_expires_at END,
       fence = CASE WHEN $18 THEN fence + 1 ELSE fence END
 WHERE run_id = $1 AND step_id = $2 AND state = $4
RETURNING *`;

/**
 * {@link updateStepStatement} for a top-level step that succeeds or is skipped, which in the
 * same statement makes the next top-level step claimable when it is a plain `run` step (no
 * run-time condition): a step's end and the next step's start in one round trip. Rows:
 * `role` 'done' (the step), then 'next' (the step made ready) if any, or 'last' when the step
 * was the run's last top-level step. $19: the run goes on.
 */
export const updateStepAndReadyNextStatement = `
WITH done AS (${updateStepStatement.trim()}
), next AS (
  UPDATE steps n SET ready_at = now()
    FROM done d
   WHERE $19 AND d.parent_id IS NULL AND d.state IN ('succeeded', 'skipped')
     AND n.run_id = d.run_id AND n.parent_id IS NULL AND n.position = d.position + 1
     AND n.state = 'pending' AND n.ready_at IS NULL AND n.kind = 'run' AND n.planned->'enabled' = 'true'::jsonb
  RETURNING n.*
)
SELECT 'done' AS role, * FROM done UNION ALL SELECT 'next' AS role, * FROM next
UNION ALL
SELECT 'last' AS role, d.* FROM done d
 WHERE $19 AND d.parent_id IS NULL AND d.state IN ('succeeded', 'skipped')
   AND NOT EXISTS (SELECT 1 FROM steps n WHERE n.run_id = d.run_id AND n.parent_id IS NULL AND n.position = d.position + 1)`;

/** The parameters of {@link updateStepStatement} for `change` of a step now in `from`. */
export function updateStepParameters(
  runId: string,
  stepId: string,
  from: StepState,
  change: StepChange,
): unknown[] {
  return [
    runId,
    stepId,
    change.to,
    from,
    change.reason ?? null,
    change.exitCode !== undefined,
    change.exitCode ?? null,
    change.outputs === undefined ? null : JSON.stringify(change.outputs),
    change.failedAttempts ?? null,
    change.lostAttempts ?? null,
    change.started === true,
    change.finished === true,
    change.readyInSeconds ?? null,
    change.retryInSeconds ?? null,
    change.expiresInSeconds !== undefined,
    change.expiresInSeconds ?? null,
    change.releaseLease === true,
    change.newFence === true,
  ];
}

/** Applies `change` to `step`; the updated row, or undefined when the step had moved on. */
export async function updateStep(
  tx: Queryable,
  step: Pick<StepRow, "run_id" | "step_id" | "state">,
  change: StepChange,
): Promise<StepRow | undefined> {
  const result = await tx.query<StepRow>(
    updateStepStatement,
    updateStepParameters(step.run_id, step.step_id, step.state, change),
  );
  return result.rows[0];
}

/**
 * Applies `change` to a top-level `step` and, when it succeeds or is skipped and `runGoesOn`,
 * makes the next plain `run` step claimable in the same statement. `next` is undefined when
 * the next step needs activation's evaluation (the caller activates it) or there is none
 * (`last`: the run's sequence is done).
 */
export async function updateStepAndReadyNext(
  tx: Queryable,
  step: Pick<StepRow, "run_id" | "step_id" | "state">,
  change: StepChange,
  runGoesOn: boolean,
): Promise<{ done: StepRow | undefined; next: StepRow | undefined; last: boolean }> {
  const rows = (
    await tx.query<StepRow & { role: "done" | "next" | "last" }>(updateStepAndReadyNextStatement, [
      ...updateStepParameters(step.run_id, step.step_id, step.state, change),
      runGoesOn,
    ])
  ).rows;
  const pick = (role: "done" | "next") => {
    const row = rows.find((candidate) => candidate.role === role);
    if (row === undefined) return undefined;
    const { role: _role, ...step } = row;
    return step as StepRow;
  };
  return {
    done: pick("done"),
    next: pick("next"),
    last: rows.some((row) => row.role === "last"),
  };
}
