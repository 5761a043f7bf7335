import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { EventRow, NewEvent, NewLine } from "./event-model.ts";
import { batchType, isTerminalType } from "./event-model.ts";
import { type RunState, runNotFound } from "./runs.ts";

/** PostgreSQL NOTIFY channel announcing new events; the payload is `<run id> <last sequence>`. */
export const eventsChannel = "packrun_evidence_events";

/**
 * Outcome of appending one event: its sequence (for a chunk of lines, its first and last), or
 * why it was refused.
 */
export type AppendResult =
  | { ok: true; sequence: number; lastSequence: number; duplicate: boolean }
  | { ok: false; error: PackrunError };

const eventColumns =
  "run_id, sequence, idempotency_key, time, level, type, step_id, message, metadata";

/** The events of one run in a batch: indexes into the batch, in ingest order. */
interface RunGroup {
  runId: string;
  /** The tenant of the run's first event: the owner when the run is created. */
  tenant: string;
  indexes: number[];
}

/** The sequences an idempotency key took: one for an event, a chunk's first..last. */
interface KeySequences {
  first: number;
  last: number;
}

/** A run's row as locked by {@link claimSql}, and the batch's keys it already stores. */
interface ClaimedRun {
  state: RunState;
  known: Map<string, KeySequences>;
}

/**
 * Creates the batch's runs that do not exist yet, locks the others until commit, and returns
 * every run's newest row; and, in the same round trip, finds which of the batch's idempotency
 * keys are stored already. Every batch first creates, then locks (UNION ALL reads `created`
 * before `locked`), each in run id order, so batches do not deadlock.
 *
 * SELECT ... FOR UPDATE returns a row's newest version even when another transaction changed it
 * after this statement's snapshot. The key lookup, like the rest of the statement, reads that
 * snapshot; `seen_sequence` is the run's counter in it, so a run whose newest counter differs
 * had events committed in between, and its keys are looked up again (see
 * {@link lookupKeysSql}). A run that another transaction created after the snapshot is neither
 * created nor locked here: the transaction is retried, and then finds it (see appendEvents).
 *
 * Statements are prepared, so their generic plan must stay on the indexes however small the
 * tables were when it was made: the keys are matched with `= ANY` on both columns (an index scan)
 * rather than joined with an unnest (a hash join over the whole table once it is planned on a
 * small one).
 */
const claimSql = `WITH created AS (
  INSERT INTO evidence.runs (run_id, tenant)
  SELECT * FROM unnest($1::text[], $2::text[]) ORDER BY 1
  ON CONFLICT (run_id) DO NOTHING
  RETURNING run_id, tenant, last_sequence, terminal_sequence
), locked AS (
  SELECT run_id, tenant, last_sequence, terminal_sequence
    FROM evidence.runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE
)
SELECT run_id, tenant, last_sequence AS sequence, terminal_sequence,
       0::bigint AS seen_sequence, NULL::text AS idempotency_key, NULL::bigint AS key_last
  FROM created
UNION ALL
SELECT l.run_id, l.tenant, l.last_sequence, l.terminal_sequence,
       (SELECT s.last_sequence FROM evidence.runs s WHERE s.run_id = l.run_id), NULL, NULL
  FROM locked l
UNION ALL
${keysSql("$1", "$3")}`;

/** Columns of {@link claimSql} on key rows. */
interface ClaimRow {
  run_id: string;
  /** null on key rows */
  tenant: string | null;
  /** The run's last sequence, or the stored key's sequence. */
  sequence: number;
  terminal_sequence: number | null;
  /** The run's last sequence in the statement's snapshot (0 for a run it created). */
  seen_sequence: number | null;
  /** null on run rows */
  idempotency_key: string | null;
  /** The stored key's last sequence (a chunk's last line); null on run rows. */
  key_last: number | null;
}

type KeyRow = { run_id: string; idempotency_key: string; sequence: number; key_last: number };

/**
 * Stored events and log chunks of the runs `runs` with the keys `keys`, in the columns of
 * {@link claimSql}.
 */
function keysSql(runs: string, keys: string): string {
  return `SELECT e.run_id, NULL, e.sequence, NULL, NULL, e.idempotency_key, e.sequence
  FROM evidence.events e
 WHERE e.run_id = ANY(${runs}::text[]) AND e.idempotency_key = ANY(${keys}::text[])
UNION ALL
SELECT c.run_id, NULL, c.first_sequence, NULL, NULL, c.idempotency_key, c.last_sequence
  FROM evidence.log_chunks c
 WHERE c.run_id = ANY(${runs}::text[]) AND c.idempotency_key = ANY(${keys}::text[])
UNION ALL
SELECT c.run_id, NULL, c.first_sequence + l.n - 1, NULL, NULL, l.e->>'k', c.first_sequence + l.n - 1
  FROM evidence.log_chunks c CROSS JOIN LATERAL jsonb_array_elements(c.lines) WITH ORDINALITY AS l(e, n)
 WHERE c.run_id = ANY(${runs}::text[]) AND c.step_id = '' AND l.e->>'k' = ANY(${keys}::text[])`;
}

/**
 * The keys a batch is looked up by: every request's key, and every event of a batch (each event
 * keeps its key, so an event sent again in another batch, or alone, finds its original).
 * Batches are a run's few rows of step '' (the third branch of {@link keysSql}); a log chunk's
 * lines are found by the chunk's key alone.
 */
function lookupKeys(events: readonly NewEvent[]): string[] {
  return events.flatMap((event) =>
    event.type === batchType && event.lines !== undefined
      ? [event.idempotencyKey, ...event.lines.map((line) => line.idempotencyKey)]
      : [event.idempotencyKey],
  );
}

/** Stored events and chunks of these runs with these keys; read under the runs' locks. */
const lookupKeysSql = `SELECT run_id, idempotency_key, sequence, key_last FROM (${keysSql("$1", "$2")})
  AS k(run_id, tenant, sequence, terminal_sequence, seen_sequence, idempotency_key, key_last)`;

/**
 * Stores the batch's new events and log chunks, moves the runs' counters and tells subscribers,
 * for every run of the batch in one statement. The notifications are delivered on commit.
 * (`run_id = ANY` keeps the generic plan on the primary key instead of a hash join over all
 * runs.)
 */
const writeSql = `WITH inserted AS (
  INSERT INTO evidence.events (${eventColumns})
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::smallint[],
                       $6::text[], $7::text[], $8::text[], $9::jsonb[])
), chunked AS (
  INSERT INTO evidence.log_chunks (run_id, first_sequence, last_sequence, idempotency_key, step_id, lines)
  SELECT * FROM unnest($13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::text[], $18::jsonb[])
), advanced AS (
  UPDATE evidence.runs AS r
     SET last_sequence = u.last_sequence, terminal_sequence = u.terminal_sequence,
         finished_at = CASE WHEN u.terminal_sequence IS NULL THEN NULL ELSE coalesce(r.finished_at, now()) END
    FROM unnest($10::text[], $11::bigint[], $12::bigint[]) AS u(run_id, last_sequence, terminal_sequence)
   WHERE r.run_id = u.run_id AND r.run_id = ANY($10::text[])
)
SELECT pg_notify('${eventsChannel}', u.run_id || ' ' || u.last_sequence)
  FROM unnest($10::text[], $11::bigint[]) AS u(run_id, last_sequence)`;

/** Groups a batch's events by run, in run id order. */
function groupByRun(events: readonly NewEvent[]): RunGroup[] {
  const byRun = new Map<string, RunGroup>();
  events.forEach((event, index) => {
    const group = byRun.get(event.runId);
    if (group === undefined) {
      byRun.set(event.runId, { runId: event.runId, tenant: event.tenant, indexes: [index] });
    } else {
      group.indexes.push(index);
    }
  });
  return [...byRun.values()].sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
}

/** A run of the batch was created by another transaction after the claim's snapshot. */
class CreatedMeanwhile extends Error {}

/** Attempts of a batch's transaction that may find a run created meanwhile (then it exists). */
const claimAttempts = 3;

async function claimRuns(
  tx: Queryable,
  groups: readonly RunGroup[],
  events: readonly NewEvent[],
): Promise<Map<string, ClaimedRun>> {
  const runIds = groups.map((group) => group.runId);
  const { rows } = await tx.query<ClaimRow>(claimSql, [
    runIds,
    groups.map((group) => group.tenant),
    lookupKeys(events),
  ]);
  const claimed = new Map<string, ClaimedRun>();
  // Runs whose stored keys must be looked up again under the lock.
  const recheck = new Set<string>();
  for (const row of rows) {
    if (row.idempotency_key !== null) continue;
    claimed.set(row.run_id, {
      state: {
        runId: row.run_id,
        tenant: row.tenant ?? "",
        lastSequence: row.sequence,
        terminalSequence: row.terminal_sequence,
      },
      known: new Map(),
    });
    if (row.seen_sequence !== row.sequence) recheck.add(row.run_id);
  }
  if (claimed.size < runIds.length) throw new CreatedMeanwhile();
  // The key lookup matches any of the batch's runs with any of its keys; that is harmless, as a
  // run's known keys are only ever asked for its own events.
  const remember = (row: KeyRow) =>
    claimed.get(row.run_id)?.known.set(row.idempotency_key, {
      first: row.sequence,
      last: row.key_last,
    });
  for (const row of rows) {
    if (row.idempotency_key !== null && !recheck.has(row.run_id)) remember(row as KeyRow);
  }
  if (recheck.size > 0) {
    // Events of these runs may have been committed between the statement's snapshot and its
    // locks: look their keys up again now that the locks are held (a new snapshot).
    const again = await tx.query<KeyRow>(lookupKeysSql, [
      [...recheck],
      lookupKeys(events.filter((event) => recheck.has(event.runId))),
    ]);
    for (const row of again.rows) remember(row);
  }
  return claimed;
}

/** The columns of {@link writeSql}: one array per column, one element per new event or run. */
class Writes {
  readonly runIds: string[] = [];
  readonly sequences: number[] = [];
  readonly keys: string[] = [];
  readonly times: string[] = [];
  readonly levels: number[] = [];
  readonly types: string[] = [];
  readonly stepIds: string[] = [];
  readonly messages: string[] = [];
  readonly metadata: string[] = [];
  readonly advancedRuns: string[] = [];
  readonly lastSequences: number[] = [];
  readonly terminalSequences: (number | null)[] = [];
  readonly chunkRunIds: string[] = [];
  readonly chunkFirsts: number[] = [];
  readonly chunkLasts: number[] = [];
  readonly chunkKeys: string[] = [];
  readonly chunkStepIds: string[] = [];
  readonly chunkLines: string[] = [];

  add(event: NewEvent, sequence: number): void {
    this.runIds.push(event.runId);
    this.sequences.push(sequence);
    this.keys.push(event.idempotencyKey);
    this.times.push(event.time.toISOString());
    this.levels.push(event.level);
    this.types.push(event.type);
    this.stepIds.push(event.stepId);
    this.messages.push(event.message);
    this.metadata.push(event.metadataJson);
  }

  /** A chunk whose lines take the sequences first.. in order. */
  addChunk(chunk: NewEvent, lines: readonly NewLine[], first: number): void {
    this.chunkRunIds.push(chunk.runId);
    this.chunkFirsts.push(first);
    this.chunkLasts.push(first + lines.length - 1);
    this.chunkKeys.push(chunk.idempotencyKey);
    this.chunkStepIds.push(chunk.stepId);
    this.chunkLines.push(`[${lines.map(storedLine).join(",")}]`);
  }

  advance(runId: string, last: number, terminal: number | null): void {
    this.advancedRuns.push(runId);
    this.lastSequences.push(last);
    this.terminalSequences.push(terminal);
  }

  params(): unknown[] {
    return [
      this.runIds,
      this.sequences,
      this.keys,
      this.times,
      this.levels,
      this.types,
      this.stepIds,
      this.messages,
      this.metadata,
      this.advancedRuns,
      this.lastSequences,
      this.terminalSequences,
      this.chunkRunIds,
      this.chunkFirsts,
      this.chunkLasts,
      this.chunkKeys,
      this.chunkStepIds,
      this.chunkLines,
    ];
  }
}

/**
 * A chunk's line (or a batch's event) as stored in `log_chunks.lines` (see
 * migrations/004-log-chunks.sql and 005-event-batches.sql): a batch's event keeps its own step
 * in "s" when it has one.
 */
function storedLine(line: NewLine): string {
  const step =
    line.stepId === undefined || line.stepId === "" ? "" : `,"s":${JSON.stringify(line.stepId)}`;
  return `{"k":${JSON.stringify(line.idempotencyKey)},"t":"${line.time.toISOString()}","l":${line.level},"y":${JSON.stringify(line.type)},"m":${JSON.stringify(line.message)},"d":${line.metadataJson}${step}}`;
}

/**
 * Appends events in one transaction and returns one result per event, in input order.
 *
 * The batch's runs are created as needed and locked, all together in run id order (no deadlocks
 * between batches); resent idempotency keys resolve to their original sequence (duplicate, no
 * row), new events get the next sequences of their run in ingest order, and the counters move
 * in the same transaction, so sequences are gapless and strictly increasing even with
 * concurrent writers. A chunk of log lines takes one sequence per line and is stored as one
 * row; a resent chunk (same key) resolves to its original sequences. Events after a terminal event are refused (RUN_FINISHED); events for
 * another tenant's run are refused as RUN_NOT_FOUND. Subscribers are told through NOTIFY (one
 * per run that got events), delivered on commit. Two statements per batch, however many runs it
 * touches (one or two more when another writer raced for one of its runs).
 */
export async function appendEvents(
  db: Database,
  events: readonly NewEvent[],
): Promise<AppendResult[]> {
  const results: (AppendResult | undefined)[] = new Array(events.length);
  const groups = groupByRun(events);
  for (let attempt = 1; ; attempt++) {
    try {
      await db.transaction(async (tx) => {
        const claimed = await claimRuns(tx, groups, events);
        const writes = new Writes();
        for (const group of groups) {
          assignSequences(group, claimed.get(group.runId) as ClaimedRun, events, results, writes);
        }
        if (writes.advancedRuns.length > 0) await tx.query(writeSql, writes.params());
      });
      break;
    } catch (error) {
      // Rolled back, locks released: the retry's snapshot has the run, locked in run id order
      // with the others (locking it now, out of order, could deadlock).
      if (!(error instanceof CreatedMeanwhile) || attempt === claimAttempts) throw error;
    }
  }
  return results.map(
    (result) =>
      result ?? { ok: false, error: new PackrunError("INTERNAL", "event was not processed") },
  );
}

/** Decides every event of one run: new (next sequence), duplicate, or refused. */
function assignSequences(
  group: RunGroup,
  { state: run, known }: ClaimedRun,
  events: readonly NewEvent[],
  results: (AppendResult | undefined)[],
  writes: Writes,
): void {
  const { runId, indexes } = group;
  if (run.tenant !== group.tenant) {
    // Another tenant's run: reported as absent, for every event of the run in the batch.
    const error = runNotFound(runId);
    for (const index of indexes) results[index] = { ok: false, error };
    return;
  }
  let last = run.lastSequence;
  let terminal = run.terminalSequence;
  for (const index of indexes) {
    const event = events[index] as NewEvent;
    const original = known.get(event.idempotencyKey);
    if (event.tenant !== run.tenant) {
      results[index] = { ok: false, error: runNotFound(runId) };
    } else if (original !== undefined) {
      results[index] = {
        ok: true,
        sequence: original.first,
        lastSequence: original.last,
        duplicate: true,
      };
    } else if (terminal !== null) {
      results[index] = {
        ok: false,
        error: new PackrunError(
          "RUN_FINISHED",
          `run ${runId} ended with event ${terminal}; event ${event.type} (${event.idempotencyKey}) comes too late`,
        ),
      };
    } else if (event.type === batchType && event.lines !== undefined) {
      results[index] = appendBatch(event, event.lines, last, known, writes);
      const appended = results[index];
      if (appended.ok && !appended.duplicate) {
        last = appended.lastSequence;
        // A batch's terminal run event is its last (validateBatch).
        if (isTerminalType(event.lines.at(-1)?.type ?? "")) terminal = last;
      }
    } else if (event.lines !== undefined) {
      const first = last + 1;
      last += event.lines.length;
      known.set(event.idempotencyKey, { first, last });
      writes.addChunk(event, event.lines, first);
      results[index] = { ok: true, sequence: first, lastSequence: last, duplicate: false };
    } else {
      last += 1;
      if (isTerminalType(event.type)) terminal = last;
      known.set(event.idempotencyKey, { first: last, last });
      writes.add(event, last);
      results[index] = { ok: true, sequence: last, lastSequence: last, duplicate: false };
    }
  }
  if (last !== run.lastSequence) writes.advance(runId, last, terminal);
}

/**
 * A batch of events after the run's sequence `last`: its events whose keys are not stored yet
 * (resent or repeated events find their originals, one by one) take the next sequences and are
 * stored as one row; a batch whose events are all stored is a duplicate.
 */
function appendBatch(
  batch: NewEvent,
  lines: readonly NewLine[],
  last: number,
  known: Map<string, KeySequences>,
  writes: Writes,
): AppendResult {
  const fresh: NewLine[] = [];
  for (const line of lines) {
    if (known.has(line.idempotencyKey)) continue;
    known.set(line.idempotencyKey, {
      first: last + fresh.length + 1,
      last: last + fresh.length + 1,
    });
    fresh.push(line);
  }
  if (fresh.length === 0) {
    const first = known.get(lines[0]?.idempotencyKey ?? "")?.first ?? last;
    const final = known.get(lines.at(-1)?.idempotencyKey ?? "")?.last ?? first;
    return { ok: true, sequence: first, lastSequence: final, duplicate: true };
  }
  const range = { first: last + 1, last: last + fresh.length };
  known.set(batch.idempotencyKey, range);
  writes.addChunk(batch, fresh, range.first);
  return { ok: true, sequence: range.first, lastSequence: range.last, duplicate: false };
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

/**
 * A run's log chunks expanded into one row per line, in the columns of `evidence.events`
 * (`c` is the chunk, `l` its line and `l.n` the line's 1-based position).
 */
const chunkLineColumns = `c.run_id, c.first_sequence + l.n - 1 AS sequence, l.e->>'k' AS idempotency_key,
       (l.e->>'t')::timestamptz AS time, (l.e->>'l')::smallint AS level, l.e->>'y' AS type,
       coalesce(l.e->>'s', c.step_id) AS step_id, l.e->>'m' AS message, l.e->'d' AS metadata`;

/**
 * Stored events in sequence order, log chunks expanded into one event per line. Only the chunks
 * that end after `afterSequence` (and start by `upToSequence`) are expanded, so resuming in the
 * middle of a chunk costs that chunk, and the lines up to `afterSequence` are left out.
 */
export async function readEvents(db: Queryable, query: EventQuery): Promise<EventRow[]> {
  const params: unknown[] = [query.runId, query.afterSequence];
  const events = ["e.run_id = $1", "e.sequence > $2"];
  const chunks = ["c.run_id = $1", "c.last_sequence > $2"];
  const lines = ["x.sequence > $2"];
  if (query.upToSequence !== undefined) {
    params.push(query.upToSequence);
    events.push(`e.sequence <= $${params.length}`);
    chunks.push(`c.first_sequence <= $${params.length}`);
    lines.push(`x.sequence <= $${params.length}`);
  }
  if (query.stepId !== undefined && query.stepId !== "") {
    params.push(query.stepId);
    const ofStep = (alias: string) =>
      query.includeTerminal
        ? `(${alias}.step_id = $${params.length} OR ${alias}.type IN ('run.succeeded', 'run.failed', 'run.cancelled', 'run.timed_out'))`
        : `${alias}.step_id = $${params.length}`;
    // A log chunk is one step's; a batch of events (step '') has each event's own step.
    chunks.push(`c.step_id IN ($${params.length}, '')`);
    lines.push(ofStep("x"));
    events.push(ofStep("e"));
  }
  if (query.minLevel !== undefined && query.minLevel > 1) {
    params.push(query.minLevel);
    events.push(`e.level >= $${params.length}`);
    lines.push(`x.level >= $${params.length}`);
  }
  params.push(query.limit);
  const filtered = (query.stepId ?? "") !== "" || (query.minLevel ?? 1) > 1;
  if (!filtered) {
    // Unfiltered: sequences are gapless, so the page lies within after+1..after+limit; chunks
    // starting beyond it are not expanded (reading a long log page by page stays linear).
    chunks.push(`c.first_sequence <= $2 + $${params.length}`);
  }
  const { rows } = await db.query<EventRow>(
    `(SELECT ${eventColumns} FROM evidence.events e WHERE ${events.join(" AND ")}
       ORDER BY e.sequence LIMIT $${params.length})
     UNION ALL
     (SELECT x.* FROM evidence.log_chunks c
        CROSS JOIN LATERAL (
          SELECT ${chunkLineColumns} FROM jsonb_array_elements(c.lines) WITH ORDINALITY AS l(e, n)
        ) x
       WHERE ${chunks.join(" AND ")} AND ${lines.join(" AND ")}
       ORDER BY x.sequence LIMIT $${params.length})
     ORDER BY sequence LIMIT $${params.length}`,
    params,
  );
  return rows;
}
