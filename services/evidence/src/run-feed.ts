import type { Database } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { Event } from "@packrun/proto/evidence/v1";
import { eventMessage, isTerminalType } from "./event-model.ts";
import type { EventNotifier } from "./event-notifier.ts";
import { readEvents } from "./event-store.ts";
import { findRun } from "./runs.ts";

/** Tuning of the per-run feeds. */
export interface RunFeedLimits {
  /** Events read per query. */
  pageSize: number;
  /**
   * Bytes (estimated, see {@link estimatedEventSize}) of the newest events a feed keeps for its
   * subscribers: its memory bound. A subscriber further behind reads the store.
   */
  windowBytes: number;
  /** Safety re-read interval in case a notification is lost. */
  pollIntervalMs: number;
}

/**
 * A generous estimate of an event's encoded size (UTF-16 units × 3 bounds UTF-8 bytes). Called
 * for every event each subscriber is sent, so it avoids serialising: a string value is bounded
 * like text, a number (a log line's attempt and line) by 24 bytes, anything else by twice its
 * JSON.
 */
export function estimatedEventSize(event: Event): number {
  const text =
    event.message.length +
    event.stepId.length +
    event.type.length +
    event.idempotencyKey.length +
    event.runId.length +
    event.tenant.length;
  let metadata = 0;
  const fields = event.metadata;
  if (fields !== undefined) {
    for (const key in fields) {
      const value = fields[key];
      metadata +=
        3 * key.length +
        8 +
        (typeof value === "string"
          ? 3 * value.length
          : typeof value === "number"
            ? 24
            : 2 * (JSON.stringify(value) ?? "").length);
    }
  }
  return 3 * text + metadata + 64;
}

/** A wake-up that many waiters share: every call to {@link Signal.fire} releases them all. */
class Signal {
  #waiters: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  fire(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * The newest events of one run, read once for all of its live subscribers on this replica.
 * Holds the events after {@link base} up to {@link head}, gapless and in sequence order (all
 * steps, as the run's own tenant sees them), at most `windowEvents` of them; a subscriber behind
 * the window reads the store itself until it catches up.
 */
export class RunFeed {
  /** The newest sequence read; events base+1..head are held. */
  head: number;
  /** Sequences up to this are no longer held. */
  base: number;
  /** The newest sequence known to be committed (from notifications). */
  known: number;
  /** Sequence of the run's terminal event once read, else undefined. */
  terminal: number | undefined;
  /** Reads from the store since the feed opened (for tests and diagnostics). */
  reads = 0;
  /** Subscribers currently attached. */
  subscribers = 0;
  readonly #events: Event[] = [];
  #bytes = 0;
  readonly #changed = new Signal();
  readonly #headListeners = new Set<(known: number) => void>();
  #reading = false;
  #closed = false;

  readonly runId: string;
  readonly tenant: string;
  private readonly deps: { database: Database; logger: Logger; limits: RunFeedLimits };

  constructor(
    runId: string,
    tenant: string,
    head: number,
    terminal: number | null,
    deps: { database: Database; logger: Logger; limits: RunFeedLimits },
  ) {
    this.runId = runId;
    this.tenant = tenant;
    this.deps = deps;
    this.head = head;
    this.base = head;
    this.known = head;
    this.terminal = terminal ?? undefined;
  }

  /**
   * Events after `after` held by the feed, at most `limit`, or undefined when `after` is behind
   * the window (then the caller reads the store).
   */
  after(after: number, limit: number): Event[] | undefined {
    if (after < this.base) return undefined;
    const from = after - this.base;
    return this.#events.slice(from, from + limit);
  }

  /** Resolves when the feed has read more (or failed, or closed). */
  changed(): Promise<void> {
    return this.#changed.wait();
  }

  /** Calls `listener` with the newest committed sequence whenever it is learned. */
  onHead(listener: (known: number) => void): () => void {
    this.#headListeners.add(listener);
    return () => this.#headListeners.delete(listener);
  }

  /** A notification: the run's newest sequence, or undefined when unknown (re-check). */
  notify(known: number | undefined): void {
    if (known !== undefined && known > this.known) {
      this.known = known;
      for (const listener of this.#headListeners) listener(known);
    }
    void this.#read(known === undefined);
  }

  /** True once the last subscriber has left. */
  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
    this.#changed.fire();
  }

  /** Reads everything committed after {@link head}, one page at a time; one reader at a time. */
  async #read(recheck: boolean): Promise<void> {
    if (this.#reading) {
      // The running read loop re-checks `known` before it stops; a re-check request is served
      // by the poll that follows.
      return;
    }
    this.#reading = true;
    const { database, limits } = this.deps;
    try {
      if (recheck) {
        const run = await findRun(database, this.tenant, this.runId);
        if (run.lastSequence > this.known) {
          this.known = run.lastSequence;
          for (const listener of this.#headListeners) listener(this.known);
        }
      }
      while (!this.#closed && this.known > this.head) {
        const rows = await readEvents(database, {
          runId: this.runId,
          afterSequence: this.head,
          upToSequence: this.known,
          limit: limits.pageSize,
        });
        this.reads++;
        if (rows.length === 0) break;
        for (const row of rows) {
          const event = eventMessage(row, this.tenant);
          this.#events.push(event);
          this.#bytes += estimatedEventSize(event);
          if (isTerminalType(row.type)) this.terminal = row.sequence;
        }
        this.head = rows.at(-1)?.sequence ?? this.head;
        this.#trim();
        this.#changed.fire();
      }
    } catch (error) {
      // Subscribers keep waiting; the next notification or poll reads again.
      this.deps.logger.warn({ err: error, runId: this.runId }, "run feed read failed");
      this.#changed.fire();
    } finally {
      this.#reading = false;
    }
  }

  #trim(): void {
    let excess = 0;
    while (this.#bytes > this.deps.limits.windowBytes && excess < this.#events.length - 1) {
      this.#bytes -= estimatedEventSize(this.#events[excess] as Event);
      excess++;
    }
    if (excess === 0) return;
    this.#events.splice(0, excess);
    this.base += excess;
  }
}

/**
 * The live feeds of one evidence replica, one per run with subscribers: opened by the first
 * subscriber, closed with the last, so a run's new events are read from the store once however
 * many follow it.
 */
export class RunFeeds {
  readonly #feeds = new Map<string, Promise<RunFeed>>();
  readonly #unwatch = new Map<string, () => void>();
  readonly #polls = new Map<string, NodeJS.Timeout>();

  private readonly deps: {
    database: Database;
    notifier: EventNotifier;
    logger: Logger;
    limits: RunFeedLimits;
  };

  constructor(deps: RunFeeds["deps"]) {
    this.deps = deps;
  }

  /** The open feed of a run, for tests and diagnostics. */
  peek(tenant: string, runId: string): Promise<RunFeed> | undefined {
    return this.#feeds.get(`${tenant}\u0000${runId}`);
  }

  /**
   * Attaches a subscriber to the run's feed (opening it if needed) after checking the run is
   * `tenant`'s; call the returned release function when done.
   * @throws PackrunError RUN_NOT_FOUND when absent or another tenant's
   */
  async attach(tenant: string, runId: string): Promise<{ feed: RunFeed; release: () => void }> {
    // Feeds are keyed by tenant too: another tenant's request never shares (or spoils) a feed;
    // opening one checks the run is the tenant's.
    const key = `${tenant}\u0000${runId}`;
    let feed: RunFeed;
    do {
      let opening = this.#feeds.get(key);
      if (opening === undefined) {
        opening = this.#open(key, runId, tenant);
        this.#feeds.set(key, opening);
        const opened = opening;
        opening.catch(() => {
          if (this.#feeds.get(key) === opened) this.#feeds.delete(key);
        });
      }
      feed = await opening;
      // A feed whose last subscriber left while this one waited for it is closed: open anew.
    } while (feed.closed);
    feed.subscribers++;
    let released = false;
    return {
      feed,
      release: () => {
        if (released) return;
        released = true;
        feed.subscribers--;
        if (feed.subscribers === 0) this.#close(key, feed);
      },
    };
  }

  async #open(key: string, runId: string, tenant: string): Promise<RunFeed> {
    const { database, notifier, logger, limits } = this.deps;
    // Watch first, then read the head: a notification in between is not lost.
    const pending: (number | undefined)[] = [];
    let feed: RunFeed | undefined;
    const unwatch = notifier.watch(runId, (known) => {
      if (feed === undefined) pending.push(known);
      else feed.notify(known);
    });
    try {
      const run = await findRun(database, tenant, runId);
      feed = new RunFeed(runId, run.tenant, run.lastSequence, run.terminalSequence, {
        database,
        logger,
        limits,
      });
    } catch (error) {
      unwatch();
      throw error;
    }
    this.#unwatch.set(key, unwatch);
    const opened = feed;
    const poll = setInterval(() => opened.notify(undefined), limits.pollIntervalMs);
    poll.unref();
    this.#polls.set(key, poll);
    for (const known of pending) feed.notify(known);
    return feed;
  }

  #close(key: string, feed: RunFeed): void {
    feed.close();
    this.#unwatch.get(key)?.();
    this.#unwatch.delete(key);
    clearInterval(this.#polls.get(key));
    this.#polls.delete(key);
    this.#feeds.delete(key);
  }
}
