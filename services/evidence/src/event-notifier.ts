import type { Logger } from "@packrun/logging";
import pg from "pg";
import { eventsChannel } from "./event-store.ts";

/**
 * Tells subscribers that a run may have new events. Hints only: subscribers always read the
 * database, which stays the truth; a missed hint costs latency, never data.
 */
export interface EventNotifier {
  /**
   * Calls `listener` when events of `runId` may have been committed (on any replica), with the
   * run's newest sequence when known, and for every run (without one) after a lost connection
   * was re-established. Returns the unsubscribe function.
   */
  watch(runId: string, listener: (lastSequence?: number) => void): () => void;
  close(): Promise<void>;
}

/** Options for {@link createPostgresNotifier}. */
export interface PostgresNotifierOptions {
  /** The evidence database; a dedicated connection LISTENs on it. */
  url: string;
  logger: Logger;
}

/**
 * An {@link EventNotifier} over PostgreSQL LISTEN/NOTIFY on one dedicated connection, so
 * subscribers on every evidence replica hear about events ingested by any of them. Reconnects
 * with backoff when the connection drops.
 */
export async function createPostgresNotifier(
  options: PostgresNotifierOptions,
): Promise<EventNotifier> {
  const listeners = new Map<string, Set<(lastSequence?: number) => void>>();
  const logger = options.logger.child({ component: "event-notifier" });
  let client: pg.Client | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  const wakeAll = () => {
    for (const set of listeners.values()) for (const listener of set) listener();
  };

  async function connect(): Promise<void> {
    const next = new pg.Client({
      connectionString: options.url,
      application_name: "packrun-evidence-listen",
    });
    next.on("notification", (message) => {
      const [runId = "", sequence] = (message.payload ?? "").split(" ");
      const set = listeners.get(runId);
      const lastSequence = sequence === undefined ? undefined : Number(sequence);
      if (set !== undefined) for (const listener of set) listener(lastSequence);
    });
    next.on("error", (error) => {
      logger.warn({ err: error }, "notification connection failed");
      lost(next);
    });
    next.on("end", () => lost(next));
    await next.connect();
    await next.query(`LISTEN ${eventsChannel}`);
    if (closed) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
    backoffMs = 100;
  }

  function lost(which: pg.Client): void {
    if (client !== which || closed) return;
    client = undefined;
    which.end().catch(() => {});
    scheduleReconnect();
  }

  function scheduleReconnect(): void {
    if (closed || retryTimer !== undefined) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().then(
        () => {
          logger.info("notification connection re-established");
          // Anything committed while we were deaf is found by reading the database.
          wakeAll();
        },
        (error: unknown) => {
          logger.warn({ err: error, retryInMs: backoffMs }, "notification reconnect failed");
          backoffMs = Math.min(backoffMs * 2, 5000);
          scheduleReconnect();
        },
      );
    }, backoffMs);
    retryTimer.unref();
  }

  await connect();
  return {
    watch(runId, listener) {
      let set = listeners.get(runId);
      if (set === undefined) {
        set = new Set();
        listeners.set(runId, set);
      }
      set.add(listener);
      return () => {
        const current = listeners.get(runId);
        current?.delete(listener);
        if (current?.size === 0) listeners.delete(runId);
      };
    },
    async close() {
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      const current = client;
      client = undefined;
      await current?.end().catch(() => {});
    },
  };
}
