import type { Database } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { RunEvent } from "./run-events.ts";

interface PendingLine {
  runId: string;
  tenant: string;
  event: RunEvent;
}

/**
 * Batches step output lines into the outbox (one INSERT per batch) so a chatty step costs a
 * few statements per second, not one per line. Lines are flushed every `intervalMs`, when
 * `maxBatch` lines are waiting, and on {@link LogWriter.flush}.
 */
export interface LogWriter {
  append(run: { id: string; tenant: string }, event: RunEvent): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Creates a {@link LogWriter} over the executor's database. */
export function createLogWriter(
  database: Database,
  logger: Logger,
  options: { intervalMs?: number; maxBatch?: number } = {},
): LogWriter {
  const intervalMs = options.intervalMs ?? 100;
  const maxBatch = options.maxBatch ?? 500;
  let pending: PendingLine[] = [];
  let flushing: Promise<void> = Promise.resolve();
  const write = async (batch: PendingLine[]) => {
    try {
      await database.query(
        `INSERT INTO outbox (run_id, idempotency_key, event)
         SELECT (e->>'runId')::uuid, e->>'idempotencyKey', e FROM jsonb_array_elements($1::jsonb) AS e
         ON CONFLICT (idempotency_key) DO NOTHING`,
        [
          JSON.stringify(
            batch.map((line) => ({
              ...line.event,
              runId: line.runId,
              tenant: line.tenant,
              time: line.event.time ?? new Date().toISOString(),
            })),
          ),
        ],
      );
    } catch (error) {
      logger.error({ err: error, lines: batch.length }, "step output lines could not be stored");
    }
  };
  const flush = () => {
    if (pending.length === 0) return flushing;
    const batch = pending;
    pending = [];
    flushing = flushing.then(() => write(batch));
    return flushing;
  };
  const timer = setInterval(() => void flush(), intervalMs);
  timer.unref();
  return {
    append(run, event) {
      pending.push({ runId: run.id, tenant: run.tenant, event });
      if (pending.length >= maxBatch) void flush();
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
