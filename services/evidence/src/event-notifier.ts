import { type ChannelListener, createPostgresChannelListener } from "@packrun/db";
import type { Logger } from "@packrun/logging";
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

/**
 * An {@link EventNotifier} over a listener on {@link eventsChannel} (payload
 * `"<runId> <lastSequence>"`); closing the notifier closes the listener.
 */
export function channelEventNotifier(listener: ChannelListener): EventNotifier {
  return {
    watch: (runId, watcher) =>
      listener.watch(eventsChannel, runId, (detail) =>
        watcher(detail === undefined ? undefined : Number(detail)),
      ),
    close: () => listener.close(),
  };
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
  return channelEventNotifier(
    await createPostgresChannelListener({
      url: options.url,
      channels: [eventsChannel],
      logger: options.logger,
      applicationName: "packrun-evidence-listen",
    }),
  );
}
