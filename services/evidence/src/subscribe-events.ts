import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { Event } from "@packrun/proto/evidence/v1";
import { packrunErrorToConnect } from "@packrun/rpc-server";
import { eventMessage, isTerminalType } from "./event-model.ts";
import { readEvents } from "./event-store.ts";
import { estimatedEventSize, type RunFeed, type RunFeeds } from "./run-feed.ts";

/** Trailer telling a cut-off subscriber where to resume (its last received sequence). */
export const resumeAfterTrailer = "packrun-resume-after-sequence";

/** Tuning of live subscriptions. */
export interface SubscriptionLimits {
  /**
   * How far (in events) a following subscriber may fall behind the run's newest event...
   */
  maxBacklog: number;
  /**
   * ...for how long (ms) before it is cut off with SUBSCRIBER_TOO_SLOW. Short bursts are
   * absorbed; replay of history is paced by the subscriber and never cut off.
   */
  backlogGraceMs: number;
  /** Events read per query and sent per message: the most a subscription holds in memory. */
  pageSize: number;
  /** Most bytes (estimated) of the events sent in one message. */
  batchBytes: number;
}

/** Everything a subscription needs. */
export interface SubscriptionDeps {
  database: Database;
  /** The replica's per-run feeds: live events are read once per run, not per subscriber. */
  feeds: RunFeeds;
  logger: Logger;
  limits: SubscriptionLimits;
}

/** What to follow. */
export interface SubscriptionRequest {
  tenant: string;
  runId: string;
  afterSequence: number;
  stepId: string;
}

/** Splits events into messages of at most `maxBytes` (estimated); one large event goes alone. */
export function* splitBySize(events: readonly Event[], maxBytes: number): Generator<Event[]> {
  let from = 0;
  let bytes = 0;
  for (let index = 0; index < events.length; index++) {
    const size = estimatedEventSize(events[index] as Event);
    if (index > from && bytes + size > maxBytes) {
      yield events.slice(from, index);
      from = index;
      bytes = 0;
    }
    bytes += size;
  }
  if (from < events.length) yield from === 0 ? (events as Event[]) : events.slice(from);
}

/** Tracks how far a follower lags behind the run's newest event, and since when. */
class Lag {
  following = false;
  lastRead: number;
  behindSince: number | undefined;

  readonly maxBacklog: number;

  constructor(after: number, maxBacklog: number) {
    this.lastRead = after;
    this.maxBacklog = maxBacklog;
  }

  observe(head: number): void {
    if (!this.following) return;
    if (head - this.lastRead <= this.maxBacklog) this.behindSince = undefined;
    else this.behindSince ??= performance.now();
  }
}

function tooSlow(request: SubscriptionRequest, limits: SubscriptionLimits, lastSent: number) {
  const error = packrunErrorToConnect(
    new PackrunError(
      "SUBSCRIBER_TOO_SLOW",
      `subscriber stayed more than ${limits.maxBacklog} events behind run ${request.runId} for over ${limits.backlogGraceMs} ms; resubscribe with after_sequence=${lastSent}`,
    ),
  );
  error.metadata.set(resumeAfterTrailer, String(lastSent));
  return error;
}

/**
 * The next events after `after` for this subscriber and the new read position: from the run's
 * feed when it still holds them, else from the store (history, or a reader the feed's window
 * left behind). Empty when the subscriber has everything the feed has read.
 */
async function nextEvents(
  deps: SubscriptionDeps,
  feed: RunFeed,
  request: SubscriptionRequest,
  after: number,
): Promise<{ events: Event[]; lastRead: number }> {
  const { pageSize } = deps.limits;
  const held = feed.after(after, pageSize);
  if (held !== undefined) {
    const last = held.at(-1);
    if (last === undefined) return { events: held, lastRead: after };
    const events =
      request.stepId === ""
        ? held
        : held.filter((event) => event.stepId === request.stepId || isTerminalType(event.type));
    return { events, lastRead: Number(last.sequence) };
  }
  const upTo = feed.head;
  const rows = await readEvents(deps.database, {
    runId: request.runId,
    afterSequence: after,
    upToSequence: upTo,
    limit: pageSize,
    stepId: request.stepId,
    includeTerminal: true,
  });
  return {
    events: rows.map((row) => eventMessage(row, request.tenant)),
    lastRead: rows.length < pageSize ? upTo : (rows.at(-1)?.sequence ?? after),
  };
}

/**
 * Replays a run's events after `afterSequence`, then follows new ones until the terminal event
 * has been sent, in batches (at most `pageSize` events and about `batchBytes` each). Live events
 * come from the run's shared feed ({@link RunFeeds}): one store read per run however many
 * subscribe; history, and a reader the feed's window left behind, is read from the store (the
 * truth). Reads only ever ask for sequences above the last one looked at, so nothing is
 * skipped, repeated or reordered, whichever replica ingested the events. Memory per
 * subscription is one page; a slow reader never slows ingestion or other subscribers. A
 * follower that stays more than `maxBacklog` events behind for longer than `backlogGraceMs` is
 * cut off with SUBSCRIBER_TOO_SLOW and the trailer {@link resumeAfterTrailer} (its last
 * received sequence). The backlog is tracked from notifications, so a reader that stops
 * reading altogether is noticed too.
 */
export async function* followEvents(
  deps: SubscriptionDeps,
  request: SubscriptionRequest,
  signal: AbortSignal,
): AsyncGenerator<Event[]> {
  const { limits } = deps;
  // Checks the run is the tenant's (RUN_NOT_FOUND otherwise).
  const { feed, release } = await deps.feeds.attach(request.tenant, request.runId);
  let lastSent = request.afterSequence;
  const lag = new Lag(request.afterSequence, limits.maxBacklog);
  // This runs even while the generator waits for a slow reader to take the last message.
  const unwatch = feed.onHead((known) => lag.observe(known));
  const aborted = new Promise<void>((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  try {
    while (!signal.aborted) {
      lag.observe(feed.known);
      if (
        lag.behindSince !== undefined &&
        performance.now() - lag.behindSince > limits.backlogGraceMs
      ) {
        deps.logger.warn(
          { runId: request.runId, lastSent, head: feed.known },
          "subscriber too slow, cut off",
        );
        throw tooSlow(request, limits, lastSent);
      }
      const { events, lastRead } = await nextEvents(deps, feed, request, lag.lastRead);
      if (lastRead === lag.lastRead) {
        lag.following = true;
        if (feed.terminal !== undefined && lag.lastRead >= feed.terminal) return;
        if (feed.closed) return;
        await Promise.race([feed.changed(), aborted]);
        continue;
      }
      lag.lastRead = lastRead;
      for (const batch of splitBySize(events, limits.batchBytes)) {
        yield batch;
        lastSent = Number(batch.at(-1)?.sequence ?? lastSent);
        if (signal.aborted) return;
      }
    }
  } finally {
    unwatch();
    release();
  }
}
