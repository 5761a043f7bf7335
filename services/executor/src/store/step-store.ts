import type { Queryable } from "@packrun/db";
import type { StepState } from "../run/state-machine.ts";
import type { StepChange } from "../run/step-change.ts";
import {
  outboxInsertSql,
  outboxParameterValues,
  type RunEvent,
  stepEventSql,
} from "./run-events.ts";
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
 *
 * When the step is the last and $20 (the run is `running` and declares no outputs, so its end
 * needs nothing evaluated), the run succeeds in the same statement, as `finishRun` in
 * `store/run-store.ts` would end it: the 'last' row's `run_settled` says whether it also settled
 * (no other step runs; the statement's snapshot still shows this step running, so it is left
 * out by name). `run_settled` is NULL when the run was not ended here.
 *
 * The statement also writes the transaction's outbox row (`outboxInsertSql`): the events
 * decided before it ($23, with $21 run id, $22 tenant, $24 batch key), then the step's event,
 * the next step's `step.ready` and, when the run settled here, the run's terminal event ($25).
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
), last AS (
  SELECT d.* FROM done d
   WHERE $19 AND d.parent_id IS NULL AND d.state IN ('succeeded', 'skipped')
     AND NOT EXISTS (SELECT 1 FROM steps n WHERE n.run_id = d.run_id AND n.parent_id IS NULL AND n.position = d.position + 1)
), finished AS (
  UPDATE runs r SET state = 'succeeded', reason = '', finished_at = now(), outputs = '{}',
         settled_at = CASE WHEN r.settled_at IS NULL AND NOT EXISTS (
                             SELECT 1 FROM steps o WHERE o.run_id = r.id AND o.state = 'running' AND o.step_id <> $2)
                           THEN now() ELSE r.settled_at END
   WHERE $20 AND r.id = $1 AND r.state = 'running' AND EXISTS (SELECT 1 FROM last)
  RETURNING r.settled_at IS NOT NULL AS run_settled
), events AS (
  ${outboxInsertSql(
    { run: 21, tenant: 22, known: 23, batchKey: 24 },
    `SELECT 1 AS n, ${stepEventSql("d", "$4::text")} AS event FROM done d
     UNION ALL SELECT 2, ${stepEventSql("x", "'pending'", "ready")} FROM next x
     UNION ALL SELECT 3, $25::jsonb FROM finished f WHERE f.run_settled`,
  )}
)
SELECT 'done' AS role, *, NULL::boolean AS run_settled FROM done
UNION ALL SELECT 'next' AS role, *, NULL::boolean FROM next
UNION ALL SELECT 'last' AS role, l.*, (SELECT run_settled FROM finished) FROM last l`;

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
 * (`last`: the run's sequence is done). With `finishRunIfLast`, a last step also ends the run
 * as succeeded in the same statement: `runEnded` then says whether the run settled too
 * (undefined when the run was not ended here). The statement writes the transaction's events
 * so far (`events.known`), those of the rows it changed and, when the run settled here,
 * `events.settled`, as one outbox row.
 */
export async function updateStepAndReadyNext(
  tx: Queryable,
  step: Pick<StepRow, "run_id" | "step_id" | "state">,
  change: StepChange,
  runGoesOn: boolean,
  finishRunIfLast: boolean,
  events: { run: { id: string; tenant: string }; known: readonly RunEvent[]; settled: RunEvent },
): Promise<{
  done: StepRow | undefined;
  next: StepRow | undefined;
  last: boolean;
  runEnded: { settled: boolean } | undefined;
}> {
  const rows = (
    await tx.query<StepRow & { role: "done" | "next" | "last"; run_settled: boolean | null }>(
      updateStepAndReadyNextStatement,
      [
        ...updateStepParameters(step.run_id, step.step_id, step.state, change),
        runGoesOn,
        finishRunIfLast,
        ...outboxParameterValues(events.run, events.known),
        JSON.stringify(events.settled),
      ],
    )
  ).rows;
  const pick = (role: "done" | "next") => {
    const row = rows.find((candidate) => candidate.role === role);
    if (row === undefined) return undefined;
    const { role: _role, run_settled: _settled, ...step } = row;
    return step as StepRow;
  };
  const last = rows.find((row) => row.role === "last");
  return {
    done: pick("done"),
    next: pick("next"),
    last: last !== undefined,
    runEnded:
      last === undefined || last.run_settled === null ? undefined : { settled: last.run_settled },
  };
}
