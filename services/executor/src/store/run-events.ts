import { randomUUID } from "node:crypto";
import { failedStepStates } from "@packrun/contract";
import type { Queryable } from "@packrun/db";

/** Severity of an event, as the evidence service stores it. */
export type EventLevel = "trace" | "debug" | "info" | "warn" | "error";

/** An event about a run, before the evidence service assigns it a sequence. */
export interface RunEvent {
  /** `run.*`, `step.*`, `log.*`, `artifact.*` or `gate.*`. */
  type: string;
  level: EventLevel;
  stepId?: string;
  message: string;
  metadata?: Record<string, unknown>;
  /** Unique per event forever: a resend with the same key is deduplicated by evidence. */
  idempotencyKey: string;
  /** ISO time; defaults to the database's clock. */
  time?: string;
}

/** The type of an outbox row holding a transaction's events (never an event's own type). */
export const eventBatchType = "event.batch";

/** An outbox row holding the events one transaction wrote, in order (see {@link recordEvents}). */
export interface EventBatchRow {
  type: typeof eventBatchType;
  runId: string;
  tenant: string;
  /** The row's own key, unique per transaction: a resent row finds its stored batch. */
  idempotencyKey: string;
  /** The events, each with its own key (a resent or repeated event finds its original). */
  events: (RunEvent & { time: string })[];
}

/** ISO time of the database's clock, as events carry it. */
const clockIso = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** The step states whose event is an error (the failed ones but `cancelled`), as a SQL array. */
const errorStepStatesSql = `ARRAY[${[...failedStepStates]
  .filter((state) => state !== "cancelled")
  .map((state) => `'${state}'`)
  .join(", ")}]::text[]`;

/**
 * The event `stepEvent` (run/step-event.ts) makes for a step transition, as a SQL jsonb
 * expression over the steps row `row` (an alias in the statement) that moved from `from` (a
 * SQL text expression): for a statement that records the event of the change it applies in
 * the same round trip. A test holds the two together (run-events.test.ts).
 */
export function stepEventSql(row: string, from: string, note?: "ready"): string {
  const name = note === "ready" ? "'ready'" : `${row}.state`;
  return `jsonb_build_object(
    'type', 'step.' || ${name},
    'level', CASE WHEN ${row}.state = ANY(${errorStepStatesSql}) THEN 'error' ELSE 'info' END,
    'stepId', ${row}.step_id,
    'message', coalesce(nullif(${row}.reason, ''), 'step ' || ${name}),
    'metadata', jsonb_build_object('from', ${from}, 'to', ${row}.state, 'attempt', ${row}.attempt)
      || CASE WHEN ${row}.exit_code IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('exitCode', ${row}.exit_code) END
      || CASE WHEN ${row}.next_attempt_at IS NULL THEN '{}'::jsonb
              ELSE jsonb_build_object('nextAttemptAt', to_char(${row}.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) END,
    'idempotencyKey', ${row}.run_id || '/' || ${row}.step_id || '/' || ${name} || '/' || ${row}.attempt || '/' || ${row}.fence)`;
}

/** Parameter numbers of {@link outboxInsertSql} in its statement. */
export interface OutboxParameters {
  /** The run's id, as text. */
  run: number;
  tenant: number;
  /** The events decided before the statement (JSON array of {@link RunEvent}). */
  known: number;
  /** The key of the row when it holds several events (a batch). */
  batchKey: number;
}

/**
 * The outbox INSERT of {@link recordEvents} as part of a statement that applies a change (a
 * data-modifying CTE), so the change and its events take one round trip: one row holding, in
 * order, the events decided before the statement and those of `derived` (a query of `n`,
 * `event` rows the statement makes from the rows it changed, e.g. with {@link stepEventSql});
 * no row when there is no event.
 */
export function outboxInsertSql(parameters: OutboxParameters, derived: string): string {
  const run = `$${parameters.run}::text`;
  const tenant = `$${parameters.tenant}::text`;
  const batchKey = `$${parameters.batchKey}::text`;
  return `INSERT INTO outbox (run_id, idempotency_key, event)
  SELECT ${run}::uuid,
         CASE WHEN s.total = 1 THEN s.events->0->>'idempotencyKey' ELSE ${batchKey} END,
         CASE WHEN s.total = 1 THEN s.events->0 || jsonb_build_object('runId', ${run}, 'tenant', ${tenant})
              ELSE jsonb_build_object('type', '${eventBatchType}', 'runId', ${run}, 'tenant', ${tenant},
                                      'idempotencyKey', ${batchKey}, 'events', s.events) END
    FROM (SELECT count(*) AS total,
                 jsonb_agg(a.e || jsonb_build_object('time', coalesce(a.e->>'time', ${clockIso})) ORDER BY a.o, a.n) AS events
            FROM (SELECT 0 AS o, x.n, x.e FROM jsonb_array_elements($${parameters.known}::jsonb) WITH ORDINALITY AS x(e, n)
                  UNION ALL SELECT 1, d.n, d.event FROM (${derived}) AS d) a) s
   WHERE s.total > 0
  ON CONFLICT (idempotency_key) DO NOTHING`;
}

/** The values of {@link OutboxParameters}' parameters, in their order: run, tenant, known, batch key. */
export function outboxParameterValues(
  run: { id: string; tenant: string },
  known: readonly RunEvent[],
): [string, string, string, string] {
  return [run.id, run.tenant, JSON.stringify(known), `${run.id}/batch/${randomUUID()}`];
}

/**
 * Writes events to the transactional outbox inside the caller's transaction, so an event
 * exists exactly when the transition that caused it committed. The shipper forwards them.
 *
 * One row per call, whatever the number of events: a single event as itself, several as one
 * {@link EventBatchRow} (one heap tuple and two index entries per transaction instead of per
 * event), which the evidence service stores as one row too.
 */
export async function recordEvents(
  tx: Queryable,
  run: { id: string; tenant: string },
  events: readonly RunEvent[],
): Promise<void> {
  const [first] = events;
  if (first === undefined) return;
  const single = events.length === 1;
  await tx.query(
    `WITH stamped AS (
       SELECT jsonb_agg(e || jsonb_build_object('time', coalesce(e->>'time', ${clockIso})) ORDER BY n) AS events
         FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS x(e, n)
     )
     INSERT INTO outbox (run_id, idempotency_key, event)
     SELECT $1::text::uuid, $3::text, CASE WHEN $5::boolean THEN events->0
                         ELSE jsonb_build_object('type', '${eventBatchType}', 'runId', $1::text,
                                'tenant', $4::text, 'idempotencyKey', $3::text, 'events', events) END
       FROM stamped
     ON CONFLICT (idempotency_key) DO NOTHING`,
    [
      run.id,
      JSON.stringify(single ? [{ ...first, runId: run.id, tenant: run.tenant }] : events),
      single ? first.idempotencyKey : `${run.id}/batch/${randomUUID()}`,
      run.tenant,
      single,
    ],
  );
}

/**
 * The outbox with its batches expanded: one row per event (`id`, `run_id`, `event`, with the
 * events of a batch under their row's id, in order), log chunks as they are. For readers that
 * look for events (tests, diagnostics): `SELECT ... FROM (${outboxEventsSql}) AS outbox`.
 */
export const outboxEventsSql = `SELECT o.id, o.run_id, e.event, e.n
  FROM outbox o CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN o.event->>'type' = '${eventBatchType}' THEN o.event->'events' ELSE jsonb_build_array(o.event) END
  ) WITH ORDINALITY AS e(event, n)`;
