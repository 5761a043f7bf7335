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

/**
 * Writes events to the transactional outbox inside the caller's transaction, so an event
 * exists exactly when the transition that caused it committed. The shipper forwards them.
 */
export async function recordEvents(
  tx: Queryable,
  run: { id: string; tenant: string },
  events: readonly RunEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((event) => ({ ...event, runId: run.id, tenant: run.tenant }));
  await tx.query(
    `INSERT INTO outbox (run_id, idempotency_key, event)
     SELECT $1, e->>'idempotencyKey', e || jsonb_build_object('time', coalesce(e->>'time', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
       FROM jsonb_array_elements($2::jsonb) AS e
     ON CONFLICT (idempotency_key) DO NOTHING`,
    [run.id, JSON.stringify(rows)],
  );
}
