import { outboxInsertSql, stepEventSql } from "./run-events.ts";
import { runColumns } from "./run-rows.ts";

// The statements of a run transaction (RunScheduler), named and explained once. Every one of
// them runs under the run's row lock, taken first by `lockRun` or `lockRunForReport`.

/** Locks a run row ($1 id, $2 tenant or NULL for any). */
export const lockRun = `SELECT ${runColumns} FROM runs WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE`;

/**
 * Locks the run of a step a worker reports on and says, in the same round trip, whether the
 * worker's claim ($3 fence, $4 lease owner) is still the current one, closing the attempt's
 * row ($5 attempt; $6–$12 how it ended) when it is. The attempt row's condition reads the
 * locked run row, so the run is locked first, as everywhere else.
 */
export const lockRunForReport = `
WITH locked AS (
  SELECT ${runColumns}, EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.step_id = $2 AND s.fence = $3 AND s.state = 'running' AND s.lease_owner = $4) AS holds_claim
    FROM runs r WHERE id = $1 FOR UPDATE OF r
), attempt AS (
  UPDATE step_attempts SET state = $6, finished_at = now(), exit_code = $7, reason = $8, cpu_micros = $9, peak_memory_bytes = $10,
         image_reference = $11, image_digest = $12
   WHERE run_id = $1 AND step_id = $2 AND attempt = $5 AND (SELECT holds_claim FROM locked)
)
SELECT * FROM locked`;

/** One step of the run ($1 run, $2 step). */
export const selectStep = "SELECT * FROM steps WHERE run_id = $1 AND step_id = $2";

/**
 * Starts a queued run ($1): running, start time, no waiting reason, and the deadline counted
 * from now (a delayed or waiting run has all of its time).
 */
export const startRun = `
UPDATE runs SET state = 'running', reason = '', started_at = now(), waiting_reason = '',
       deadline_at = CASE WHEN timeout_seconds > 0 THEN now() + make_interval(secs => timeout_seconds) ELSE deadline_at END
 WHERE id = $1 RETURNING deadline_at`;

/** Moves the run ($1) to a non-terminal state $2 with reason $3. */
export const setRunState = "UPDATE runs SET state = $2, reason = $3 WHERE id = $1";

/**
 * Ends the run ($1): terminal state $2, reason $3, outputs $4; settles it in the same statement
 * when none of its steps runs any more (`settled`).
 */
export const finishRun = `
UPDATE runs SET state = $2, reason = $3, finished_at = now(), outputs = $4,
       settled_at = CASE WHEN settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND state = 'running')
                         THEN now() ELSE settled_at END
 WHERE id = $1
RETURNING settled_at IS NOT NULL AS settled`;

/** Marks a terminal run ($1) settled once none of its steps runs any more; a row when it did. */
export const settleRun = `
UPDATE runs SET settled_at = now()
 WHERE id = $1 AND settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND state = 'running')`;

/** True when the run ($1) has a deadline and it passed (database clock). */
export const deadlinePassed = "SELECT deadline_at <= now() AS passed FROM runs WHERE id = $1";

/** A part of the run's ($1) plan ($2: `approvals`, `policies`, `outputs`). */
export const planPart = "SELECT (plan_json::jsonb)->$2 AS part FROM runs WHERE id = $1";

/**
 * Reaches the top-level step at position $2 of run $1 when it is a plain `run` step (no run-time
 * condition): made claimable now. No row when it is another kind, already reached, or absent.
 */
export const readyPlainTopLevelStep = `
UPDATE steps SET ready_at = now()
 WHERE run_id = $1 AND parent_id IS NULL AND position = $2
   AND state = 'pending' AND ready_at IS NULL AND kind = 'run' AND planned->'enabled' = 'true'::jsonb
RETURNING *`;

/**
 * {@link startRun} and, in the same statement, {@link readyPlainTopLevelStep} for the run's first
 * step: a run's start and its first step's readiness in one round trip. One row: the run's
 * `run_deadline_at`, with the readied step's columns (all NULL when the first step is not a
 * plain `run` step; the caller then activates it). The statement writes the transaction's
 * outbox row too (`outboxInsertSql`): the events decided before it ($4, the run's start among
 * them; $2 run id, $3 tenant, $5 batch key), then the first step's `step.ready`.
 */
export const startRunAndReadyFirst = `
WITH started AS (${startRun.trim().replace("RETURNING deadline_at", "RETURNING deadline_at AS run_deadline_at")}
), readied AS (${readyPlainTopLevelStep.trim().replaceAll("$2", "0")}
), events AS (
  ${outboxInsertSql(
    { run: 2, tenant: 3, known: 4, batchKey: 5 },
    `SELECT 1 AS n, ${stepEventSql("x", "'pending'", "ready")} AS event FROM readied x`,
  )}
)
SELECT started.run_deadline_at, readied.* FROM started LEFT JOIN readied ON true`;

/** The top-level step at position $2 of run $1. */
export const topLevelStep =
  "SELECT * FROM steps WHERE run_id = $1 AND parent_id IS NULL AND position = $2";

/** Makes the plain `run` steps $2 of run $1 claimable now, if still untouched. */
export const readyRunSteps = `
UPDATE steps SET ready_at = now()
 WHERE run_id = $1 AND step_id = ANY($2) AND state = 'pending' AND ready_at IS NULL
RETURNING *`;

/** How many steps run $1 holds (the map expansion's limit). */
export const countSteps = "SELECT count(*)::int AS n FROM steps WHERE run_id = $1";

/**
 * A block ($2 of run $1) with its children's counters (kept by a trigger, migration 010):
 * total, waiting (not reached), active (reached, running or awaiting approval) and failed.
 */
export const blockWithChildCounts = `
SELECT s.*, coalesce(c.total, 0) AS children_total, coalesce(c.waiting, 0) AS children_waiting,
       coalesce(c.active, 0) AS children_active, coalesce(c.failed, 0) AS children_failed
  FROM steps s LEFT JOIN block_children c ON c.run_id = s.run_id AND c.block_id = s.step_id
 WHERE s.run_id = $1 AND s.step_id = $2`;

/** The next $3 children of block $2 (run $1) not reached yet, in order. */
export const nextChildren = `
SELECT * FROM steps WHERE run_id = $1 AND parent_id = $2 AND state = 'pending' AND ready_at IS NULL
 ORDER BY position LIMIT $3`;

/** Skips the children not reached yet of blocks $2 (run $1) with reason $3. */
export const skipChildren = `
UPDATE steps SET state = 'skipped', finished_at = now(), reason = $3
 WHERE run_id = $1 AND parent_id = ANY($2) AND state = 'pending' AND ready_at IS NULL
RETURNING *`;

/**
 * The run's ($1) end for its steps not started: pending ones become $2 (skipped or cancelled),
 * gates awaiting approval cancelled, with reason $3 (`runEndedChange`, applied to all at once).
 */
export const endNotStartedSteps = `
UPDATE steps s SET state = CASE WHEN old.state = 'pending' THEN $2 ELSE 'cancelled' END,
       finished_at = now(), reason = $3
  FROM (SELECT step_id, state FROM steps
         WHERE run_id = $1 AND state IN ('pending', 'awaiting-approval') FOR UPDATE) old
 WHERE s.run_id = $1 AND s.step_id = old.step_id
RETURNING s.*, old.state AS old_state`;

/** The run's ($1) blocks still running. */
export const runningBlocks =
  "SELECT step_id FROM steps WHERE run_id = $1 AND state = 'running' AND kind IN ('parallel', 'map')";

/** Whether the run ($1) has a gate waiting, and whether anything else can still move. */
export const waitingAndMoving = `
SELECT bool_or(state = 'awaiting-approval') AS waiting,
       bool_or((state = 'running' AND lease_owner IS NOT NULL) OR (state = 'pending' AND ready_at IS NOT NULL)) AS moving
  FROM steps WHERE run_id = $1`;
