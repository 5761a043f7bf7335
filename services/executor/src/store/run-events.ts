import { randomUUID } from "node:crypto";
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
