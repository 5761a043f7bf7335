import type { Logger } from "@packrun/logging";
import pg from "pg";

/** Called with the rest of a payload after its key (undefined when none, or after a reconnect). */
export type KeyListener = (detail: string | undefined) => void;

/** Called with a whole payload (undefined after a reconnect). */
export type ChannelWatcher = (payload: string | undefined) => void;

/**
 * Wakes listeners when a PostgreSQL NOTIFY arrives on one of a fixed set of channels. Hints
 * only: listeners read the database, which stays the truth, so a lost notification may cost
 * latency but never data. Payload convention: the key is the payload up to its first space,
 * the rest (if any) is the detail, e.g. `"<runId> <sequence>"`.
 */
export interface ChannelListener {
  /**
   * Calls `listener` for each notification on `channel` whose key is `key`, and (with no
   * detail) after a lost connection was re-established. Returns the unsubscribe function.
   * @throws Error if `channel` is not one the listener was created for
   */
  watch(channel: string, key: string, listener: KeyListener): () => void;
  /** Calls `listener` for every notification on `channel`, and after a reconnect. */
  watchAll(channel: string, listener: ChannelWatcher): () => void;
  /** Stops listening; later unsubscribe calls are harmless. */
  close(): Promise<void>;
}

const channelName = /^[a-z_][a-z0-9_]{0,62}$/;

/** Subscriptions and dispatch, shared by both constructors. */
function createRegistry(channels: readonly string[], onListenerError: (error: unknown) => void) {
  for (const channel of channels)
    if (!channelName.test(channel)) throw new Error(`bad notification channel name ${channel}`);
  const byKey = new Map(channels.map((channel) => [channel, new Map<string, Set<KeyListener>>()]));
  const whole = new Map(channels.map((channel) => [channel, new Set<ChannelWatcher>()]));
  const call = <T>(listener: (value: T) => void, value: T) => {
    try {
      listener(value);
    } catch (error) {
      onListenerError(error);
    }
  };
  const known = <T>(map: Map<string, T>, channel: string): T => {
    const found = map.get(channel);
    if (found === undefined) throw new Error(`not listening on channel ${channel}`);
    return found;
  };
  return {
    dispatch(channel: string, payload: string): void {
      const space = payload.indexOf(" ");
      const key = space < 0 ? payload : payload.slice(0, space);
      const detail = space < 0 ? undefined : payload.slice(space + 1);
      for (const listener of byKey.get(channel)?.get(key) ?? []) call(listener, detail);
      for (const listener of whole.get(channel) ?? []) call(listener, payload);
    },
    /** After a reconnect: anything notified while deaf is found by reading the database. */
    wakeAll(): void {
      for (const keys of byKey.values())
        for (const set of keys.values()) for (const listener of set) call(listener, undefined);
      for (const set of whole.values()) for (const listener of set) call(listener, undefined);
    },
    watch(channel: string, key: string, listener: KeyListener): () => void {
      const keys = known(byKey, channel);
      let set = keys.get(key);
      if (set === undefined) {
        set = new Set();
        keys.set(key, set);
      }
      set.add(listener);
      return () => {
        const current = keys.get(key);
        current?.delete(listener);
        if (current?.size === 0) keys.delete(key);
      };
    },
    watchAll(channel: string, listener: ChannelWatcher): () => void {
      const set = known(whole, channel);
      set.add(listener);
      return () => set.delete(listener);
    },
  };
}

/** Options for {@link createPostgresChannelListener}. */
export interface PostgresChannelListenerOptions {
  /** The database whose notifications to hear; a dedicated connection LISTENs on it. */
  url: string;
  /** Channels to LISTEN on (lower-case identifiers). */
  channels: readonly string[];
  logger: Logger;
  /** application_name of the connection, so operators (and tests) can tell it apart. */
  applicationName?: string;
}

/**
 * A {@link ChannelListener} on one dedicated PostgreSQL connection. Reconnects with backoff
 * (100 ms doubling to 5 s) when the connection drops, then wakes every listener, since
 * notifications sent meanwhile are lost. Rejects if the first connection fails.
 */
export async function createPostgresChannelListener(
  options: PostgresChannelListenerOptions,
): Promise<ChannelListener> {
  const logger = options.logger.child({
    component: "channel-listener",
    channels: options.channels,
  });
  const registry = createRegistry(options.channels, (error) =>
    logger.error({ err: error }, "notification listener threw"),
  );
  let client: pg.Client | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  async function connect(): Promise<void> {
    const next = new pg.Client({
      connectionString: options.url,
      application_name: options.applicationName ?? "packrun-listen",
      // A silently dead peer (no FIN, e.g. a failover) is otherwise noticed only by the kernel's
      // default keepalive after hours.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    // Set when the connection fails before it became `client`, when `lost` cannot act yet.
    let failed = false;
    next.on("notification", (message) => registry.dispatch(message.channel, message.payload ?? ""));
    next.on("error", (error) => {
      logger.warn({ err: error }, "notification connection failed");
      failed = true;
      lost(next);
    });
    next.on("end", () => {
      failed = true;
      lost(next);
    });
    try {
      await next.connect();
      await next.query(
        options.channels.map((channel) => `LISTEN ${pg.escapeIdentifier(channel)};`).join(" "),
      );
      if (failed) throw new Error("notification connection ended while it was set up");
    } catch (error) {
      await next.end().catch(() => {});
      throw error;
    }
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
          if (closed) return;
          logger.info("notification connection re-established");
          registry.wakeAll();
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
    watch: registry.watch,
    watchAll: registry.watchAll,
    async close() {
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      const current = client;
      client = undefined;
      await current?.end().catch(() => {});
    },
  };
}

/** A database that can LISTEN itself, such as PGlite (see `PgliteDatabase.listen`). */
export interface ListeningDatabase {
  listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
}

/**
 * A {@link ChannelListener} over a database's own `listen`: the embedded PGlite runs in this
 * process, so there is no connection to lose and nothing to reconnect.
 */
export async function createDatabaseChannelListener(
  database: ListeningDatabase,
  channels: readonly string[],
  logger?: Logger,
): Promise<ChannelListener> {
  const registry = createRegistry(channels, (error) =>
    logger?.error({ err: error }, "notification listener threw"),
  );
  const unlisten: (() => Promise<void>)[] = [];
  try {
    for (const channel of channels)
      unlisten.push(
        await database.listen(channel, (payload) => registry.dispatch(channel, payload)),
      );
  } catch (error) {
    await Promise.allSettled(unlisten.map((stop) => stop()));
    throw error;
  }
  let closed = false;
  return {
    watch: registry.watch,
    watchAll: registry.watchAll,
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(unlisten.map((stop) => stop()));
    },
  };
}
