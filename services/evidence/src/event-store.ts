import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { EventRow, NewEvent } from "./event-model.ts";
import { isTerminalType } from "./event-model.ts";
import { claimRun } from "./runs.ts";

/** PostgreSQL NOTIFY channel announcing new events; the payload is `<run id> <last sequence>`. */
export const eventsChannel = "packrun_evidence_events";

/** Outcome of appending one event: its sequence, or why it was refused. */
export type AppendResult =
  | { ok: true; sequence: number; duplicate: boolean }
  | { ok: false; error: PackrunError };

const eventColumns =
  "run_id, sequence, idempotency_key, time, level, type, step_id, message, metadata";

/**
 * Appends events in one transaction and returns one result per event, in input order.
 *
 * Per run, in run id order (no deadlocks between batches): the run row is locked, resent
 * idempotency keys resolve to their original sequence (duplicate, no row), new events get the
 * next sequences, and the counter moves in the same transaction, so sequences are gapless and
 * strictly increasing even with concurrent writers. Events after a terminal event are refused
 * (RUN_FINISHED). Subscribers are told through NOTIFY, delivered on commit.
 */
export async function appendEvents(
  db: Database,
  events: readonly NewEvent[],
): Promise<AppendResult[]> {
  const results: (AppendResult | undefined)[] = new Array(events.length);
  const byRun = new Map<string, number[]>();
  events.forEach((event, index) => {
    const list = byRun.get(event.runId);
    if (list === undefined) byRun.set(event.runId, [index]);
    else list.push(index);
  });
  await db.transaction(async (tx) => {
    for (const runId of [...byRun.keys()].sort()) {
      const indexes = byRun.get(runId) as number[];
      await appendToRun(tx, runId, indexes, events, results);
    }
  });
  return results.map(
    (result) =>
      result ?? { ok: false, error: new PackrunError("INTERNAL", "event was not processed") },
  );
}

async function appendToRun(
  tx: Queryable,
  runId: string,
  indexes: readonly number[],
  events: readonly NewEvent[],
  results: (AppendResult | undefined)[],
): Promise<void> {
  const first = events[indexes[0] as number] as NewEvent;
  let run: Awaited<ReturnType<typeof claimRun>>;
  try {
    run = await claimRun(tx, first.tenant, runId);
  } catch (error) {
    if (!(error instanceof PackrunError)) throw error;
    for (const index of indexes) results[index] = { ok: false, error };
    return;
  }
  const keys = indexes.map((index) => (events[index] as NewEvent).idempotencyKey);
  const { rows: existing } = await tx.query<{ idempotency_key: string; sequence: number }>(
    "SELECT idempotency_key, sequence FROM evidence.events WHERE run_id = $1 AND idempotency_key = ANY($2::text[])",
    [runId, keys],
  );
  const known = new Map(existing.map((row) => [row.idempotency_key, row.sequence]));
  let last = run.lastSequence;
  let terminal = run.terminalSequence;
  const inserts: { event: NewEvent; sequence: number }[] = [];
  for (const index of indexes) {
    const event = events[index] as NewEvent;
    const original = known.get(event.idempotencyKey);
    if (event.tenant !== run.tenant) {
      results[index] = {
        ok: false,
        error: new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`),
      };
    } else if (original !== undefined) {
      results[index] = { ok: true, sequence: original, duplicate: true };
    } else if (terminal !== null) {
      results[index] = {
        ok: false,
        error: new PackrunError(
          "RUN_FINISHED",
          `run ${runId} ended with event ${terminal}; event ${event.type} (${event.idempotencyKey}) comes too late`,
        ),
      };
    } else {
      last += 1;
      if (isTerminalType(event.type)) terminal = last;
      known.set(event.idempotencyKey, last);
      inserts.push({ event, sequence: last });
      results[index] = { ok: true, sequence: last, duplicate: false };
    }
  }
  if (inserts.length === 0) return;
  await tx.query(
    `INSERT INTO evidence.events (${eventColumns})
     SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::smallint[],
                              $6::text[], $7::text[], $8::text[], $9::jsonb[])`,
    [
      runId,
      inserts.map((insert) => insert.sequence),
      inserts.map((insert) => insert.event.idempotencyKey),
      inserts.map((insert) => insert.event.time.toISOString()),
      inserts.map((insert) => insert.event.level),
      inserts.map((insert) => insert.event.type),
      inserts.map((insert) => insert.event.stepId),
      inserts.map((insert) => insert.event.message),
      inserts.map((insert) => JSON.stringify(insert.event.metadata)),
    ],
  );
  await tx.query(
    `UPDATE evidence.runs
        SET last_sequence = $2, terminal_sequence = $3,
            finished_at = CASE WHEN $3::bigint IS NULL THEN NULL ELSE coalesce(finished_at, now()) END
      WHERE run_id = $1`,
    [runId, last, terminal],
  );
  await tx.query("SELECT pg_notify($1, $2)", [eventsChannel, `${runId} ${last}`]);
}

/** Filters for {@link readEvents}. */
export interface EventQuery {
  runId: string;
  /** Only sequences above this. */
  afterSequence: number;
  /** Only sequences up to this (inclusive); omit for no bound. */
  upToSequence?: number;
  limit: number;
  /** Only this step's events ("" = no filter). */
  stepId?: string;
  /** With stepId: terminal run events are included as well, so a follower sees the end. */
  includeTerminal?: boolean;
  /** Only levels >= this (1..5). */
  minLevel?: number;
}

/** Stored events in sequence order. */
export async function readEvents(db: Queryable, query: EventQuery): Promise<EventRow[]> {
  const params: unknown[] = [query.runId, query.afterSequence];
  const where = ["run_id = $1", "sequence > $2"];
  if (query.upToSequence !== undefined) {
    params.push(query.upToSequence);
    where.push(`sequence <= $${params.length}`);
  }
  if (query.stepId !== undefined && query.stepId !== "") {
    params.push(query.stepId);
    where.push(
      query.includeTerminal
        ? `(step_id = $${params.length} OR type IN ('run.succeeded', 'run.failed', 'run.cancelled'))`
        : `step_id = $${params.length}`,
    );
  }
  if (query.minLevel !== undefined && query.minLevel > 1) {
    params.push(query.minLevel);
    where.push(`level >= $${params.length}`);
  }
  params.push(query.limit);
  const { rows } = await db.query<EventRow>(
    `SELECT ${eventColumns} FROM evidence.events WHERE ${where.join(" AND ")}
      ORDER BY sequence LIMIT $${params.length}`,
    params,
  );
  return rows;
}
