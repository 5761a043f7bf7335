import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { Event } from "@packrun/proto/evidence/v1";
import { packrunErrorToConnect } from "@packrun/rpc-server";
import { eventMessage } from "./event-model.ts";
import type { EventNotifier } from "./event-notifier.ts";
import { readEvents } from "./event-store.ts";
import { findRun } from "./runs.ts";

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
  /** Events read per query: the most a subscription holds in memory. */
  pageSize: number;
  /** Safety re-read interval in case a notification is lost. */
  pollIntervalMs: number;
}

/** Everything a subscription needs. */
export interface SubscriptionDeps {
  database: Database;
  notifier: EventNotifier;
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

/** A one-shot wake-up that remembers a notification arriving before anyone waits. */
class Wakeup {
  #pending = true;
  #resolve: (() => void) | undefined;

  notify(): void {
    this.#pending = true;
    this.#resolve?.();
  }

  /** Resolves at the next notification, or at once if one arrived since the last wait. */
  async wait(): Promise<void> {
    if (!this.#pending) await new Promise<void>((resolve) => (this.#resolve = resolve));
    this.#resolve = undefined;
    this.#pending = false;
  }
}

/**
 * Replays a run's events after `afterSequence`, then follows new ones until the terminal event
 * has been sent. Every read goes to the database (the truth) and only ever asks for sequences
 * above the last one sent, so nothing is skipped, repeated or reordered, whichever replica
 * ingested the events. Memory per subscription is one page; a slow reader never slows
 * ingestion or other subscribers. A follower that stays more than `maxBacklog` events behind
 * for longer than `backlogGraceMs` is cut off with SUBSCRIBER_TOO_SLOW and the trailer
 * {@link resumeAfterTrailer} (its last received sequence). The backlog is tracked from
 * notifications, so a reader that stops reading altogether is noticed too.
 */
export async function* followEvents(
  deps: SubscriptionDeps,
  request: SubscriptionRequest,
  signal: AbortSignal,
): AsyncGenerator<Event> {
  const { database, limits } = deps;
  await findRun(database, request.tenant, request.runId);
  const wakeup = new Wakeup();
  let lastSent = request.afterSequence;
  // Every sequence up to lastRead has been looked at (sent, or filtered out by step).
  let lastRead = request.afterSequence;
  let following = false;
  // Since when the backlog exceeds maxBacklog (undefined while it does not).
  let behindSince: number | undefined;
  const observe = (head: number) => {
    if (!following) return;
    if (head - lastRead <= limits.maxBacklog) behindSince = undefined;
    else behindSince ??= performance.now();
  };
  const unwatch = deps.notifier.watch(request.runId, (head) => {
    // This runs even while the generator waits for a slow reader to take the last message.
    if (head !== undefined) observe(head);
    wakeup.notify();
  });
  const poll = setInterval(() => wakeup.notify(), limits.pollIntervalMs);
  poll.unref();
  const onAbort = () => wakeup.notify();
  signal.addEventListener("abort", onAbort);
  try {
    while (!signal.aborted) {
      await wakeup.wait();
      for (;;) {
        const run = await findRun(database, request.tenant, request.runId);
        observe(run.lastSequence);
        if (behindSince !== undefined && performance.now() - behindSince > limits.backlogGraceMs) {
          deps.logger.warn(
            { runId: request.runId, lastSent, head: run.lastSequence },
            "subscriber too slow, cut off",
          );
          const error = packrunErrorToConnect(
            new PackrunError(
              "SUBSCRIBER_TOO_SLOW",
              `subscriber stayed more than ${limits.maxBacklog} events behind run ${request.runId} for over ${limits.backlogGraceMs} ms; resubscribe with after_sequence=${lastSent}`,
            ),
          );
          error.metadata.set(resumeAfterTrailer, String(lastSent));
          throw error;
        }
        if (run.lastSequence > lastRead) {
          const rows = await readEvents(database, {
            runId: request.runId,
            afterSequence: lastRead,
            upToSequence: run.lastSequence,
            limit: limits.pageSize,
            stepId: request.stepId,
            includeTerminal: true,
          });
          lastRead =
            rows.length < limits.pageSize ? run.lastSequence : (rows.at(-1)?.sequence ?? lastRead);
          for (const row of rows) {
            if (row.sequence <= lastSent) continue;
            yield eventMessage(row, request.tenant);
            lastSent = row.sequence;
          }
          if (signal.aborted) return;
          if (lastRead < run.lastSequence) continue;
        }
        following = true;
        if (run.terminalSequence !== null && lastRead >= run.terminalSequence) return;
        break;
      }
    }
  } finally {
    unwatch();
    clearInterval(poll);
    signal.removeEventListener("abort", onAbort);
  }
}
