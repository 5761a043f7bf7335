import { type Database, isConnectionError } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { RunEvent } from "../store/run-events.ts";

interface PendingLine {
  runId: string;
  tenant: string;
  event: RunEvent;
}

/** The lines of one step attempt (or whatever the key groups) waiting to be written. */
interface LineQueue {
  readonly runId: string;
  lines: PendingLine[];
  /** Lines ever appended to / written from this queue. */
  appended: number;
  written: number;
}

/** Most bytes of messages in one chunk of lines (one outbox row, one evidence row). */
export const defaultChunkBytes = 64 * 1024;

/** The outbox's type of an event that is a chunk of log lines (see evidence-sink.ts). */
export const logChunkType = "log.chunk";

/** A line of a {@link LogChunkEvent}, as the outbox stores it. */
export interface ChunkLine {
  type: string;
  level: RunEvent["level"];
  message: string;
  metadata?: Record<string, unknown>;
  idempotencyKey: string;
  time: string;
}

/**
 * An outbox row holding consecutive lines of one step: what the evidence service stores as one
 * log chunk, each line with its own sequence. Its key is its first line's.
 */
export interface LogChunkEvent {
  type: typeof logChunkType;
  runId: string;
  tenant: string;
  stepId: string;
  idempotencyKey: string;
  lines: ChunkLine[];
}

/** Cuts one queue's lines (of one run and step) into chunks of at most `maxBytes` messages. */
function cutChunks(lines: readonly PendingLine[], maxBytes: number): PendingLine[][] {
  const chunks: PendingLine[][] = [];
  let current: PendingLine[] = [];
  let bytes = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(line.event.message) + 64;
    if (current.length > 0 && bytes + size > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** The outbox row of one chunk (`lines` is not empty and of one run and step). */
function chunkEvent(lines: readonly PendingLine[]): LogChunkEvent {
  const first = lines[0] as PendingLine;
  return {
    type: logChunkType,
    runId: first.runId,
    tenant: first.tenant,
    stepId: first.event.stepId ?? "",
    idempotencyKey: first.event.idempotencyKey,
    lines: lines.map(({ event }) => ({
      type: event.type,
      level: event.level,
      // jsonb cannot hold U+0000; the evidence service stores it as U+FFFD as well.
      message: event.message.replaceAll("\u0000", "\uFFFD"),
      ...(event.metadata === undefined ? {} : { metadata: event.metadata }),
      idempotencyKey: event.idempotencyKey,
      time: event.time ?? new Date().toISOString(),
    })),
  };
}

/**
 * Batches step output lines into the outbox (one INSERT per batch) so a chatty step costs a
 * few statements per second, not one per line, and stores each step's lines of a batch as
 * chunks (one outbox row per up to `chunkBytes` of lines; the evidence service keeps them as
 * one row as well). An idle writer writes a line right away; lines that arrive while a write is
 * in flight form the next batch (at most `maxBatch` lines), so the batch size follows the load
 * and a line waits at most about one write before its chunk is stored. `intervalMs` is only the
 * backstop of retries.
 *
 * One writer serves every step of the worker, and it is fair: each batch takes lines from every
 * step with lines waiting, in turn, so a step flooding its output (up to its line cap) delays
 * another step's lines by about one batch, not by the whole flood. A batch that fails because
 * the database is unreachable is put back and retried; one the database refuses for its content
 * is logged and dropped.
 */
export interface LogWriter {
  append(run: { id: string; tenant: string }, event: RunEvent): void;
  /** Resolves once every line appended so far (of `runId` only, when given) is written. */
  flush(runId?: string): Promise<void>;
  close(): Promise<void>;
}

/** Creates a {@link LogWriter} over the executor's database. */
export function createLogWriter(
  database: Database,
  logger: Logger,
  options: { intervalMs?: number; maxBatch?: number; retryMs?: number; chunkBytes?: number } = {},
): LogWriter {
  const intervalMs = options.intervalMs ?? 100;
  const maxBatch = options.maxBatch ?? 4000;
  const retryMs = options.retryMs ?? 500;
  // Insertion-ordered: round robin over the queues in the order they first had lines.
  const queues = new Map<string, LineQueue>();
  let waiting = 0;
  let writing: Promise<void> | undefined;
  let closing = false;
  let soon = false;
  const waiters: { until: Map<LineQueue, number>; resolve: () => void }[] = [];

  const chunkBytes = options.chunkBytes ?? defaultChunkBytes;
  /** One outbox row per chunk: every queue's lines of the batch, cut at `chunkBytes`. */
  const insert = (taken: Map<LineQueue, PendingLine[]>) =>
    database.query(
      `INSERT INTO outbox (run_id, idempotency_key, event)
       SELECT (e->>'runId')::uuid, e->>'idempotencyKey', e FROM jsonb_array_elements($1::jsonb) AS e
       ON CONFLICT (idempotency_key) DO NOTHING`,
      [
        JSON.stringify(
          [...taken.values()].flatMap((lines) => cutChunks(lines, chunkBytes).map(chunkEvent)),
        ),
      ],
    );

  /** Up to maxBatch lines, taken from every queue in turn. */
  const nextBatch = (): { batch: PendingLine[]; taken: Map<LineQueue, PendingLine[]> } => {
    const taken = new Map<LineQueue, PendingLine[]>();
    const active = [...queues.values()].filter((queue) => queue.lines.length > 0);
    const share = Math.max(1, Math.floor(maxBatch / Math.max(1, active.length)));
    let size = 0;
    for (const queue of active) {
      const lines = queue.lines.splice(0, Math.min(share, maxBatch - size));
      size += lines.length;
      taken.set(queue, lines);
    }
    // Whatever the shares left of the batch goes to the queues that have more.
    for (const queue of active) {
      if (size >= maxBatch) break;
      const lines = queue.lines.splice(0, maxBatch - size);
      size += lines.length;
      taken.set(queue, [...(taken.get(queue) ?? []), ...lines]);
    }
    waiting -= size;
    return { batch: [...taken.values()].flat(), taken };
  };

  const settle = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i];
      if (waiter === undefined) continue;
      if ([...waiter.until].every(([queue, target]) => queue.written >= target)) {
        waiters.splice(i, 1);
        waiter.resolve();
      }
    }
    for (const [key, queue] of queues)
      if (queue.lines.length === 0 && queue.written === queue.appended) queues.delete(key);
  };

  const drain = async () => {
    while (waiting > 0) {
      const { batch, taken } = nextBatch();
      try {
        await insert(taken);
      } catch (error) {
        if (isConnectionError(error) && !closing) {
          // Put the lines back in front, in order, and try again shortly.
          for (const [queue, lines] of taken) queue.lines.unshift(...lines);
          waiting += batch.length;
          logger.warn(
            { err: error, lines: batch.length },
            "step output lines not stored yet; retrying",
          );
          await new Promise((resolve) => setTimeout(resolve, retryMs));
          continue;
        }
        logger.error({ err: error, lines: batch.length }, "step output lines could not be stored");
      }
      for (const [queue, lines] of taken) queue.written += lines.length;
      settle();
    }
    settle();
  };

  const kick = (): Promise<void> => {
    writing ??= drain().finally(() => {
      writing = undefined;
      if (waiting > 0) void kick();
    });
    return writing;
  };

  const timer = setInterval(() => {
    if (waiting > 0) void kick();
  }, intervalMs);
  timer.unref();

  const flush = (runId?: string): Promise<void> => {
    const until = new Map<LineQueue, number>();
    for (const queue of queues.values())
      if ((runId === undefined || queue.runId === runId) && queue.written < queue.appended)
        until.set(queue, queue.appended);
    if (until.size === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => waiters.push({ until, resolve }));
    void kick();
    return done;
  };

  return {
    append(run, event) {
      const key = `${run.id}/${event.stepId ?? ""}`;
      let queue = queues.get(key);
      if (queue === undefined) {
        queue = { runId: run.id, lines: [], appended: 0, written: 0 };
        queues.set(key, queue);
      }
      queue.lines.push({ runId: run.id, tenant: run.tenant, event });
      queue.appended++;
      waiting++;
      if (waiting >= maxBatch) void kick();
      else if (writing === undefined && !soon) {
        // Idle: write at the end of this turn (lines of the same chunk go together) instead of
        // waiting for the timer; while a write is in flight, lines gather for the next batch.
        soon = true;
        setImmediate(() => {
          soon = false;
          if (waiting > 0) void kick();
        });
      }
    },
    flush,
    async close() {
      // While closing, a database that is down no longer holds the writer up: lines it cannot
      // take are logged as lost.
      closing = true;
      clearInterval(timer);
      await flush();
    },
  };
}
