import { create } from "@bufbuild/protobuf";
import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import {
  type IngestEventsRequest,
  type IngestEventsResponse,
  IngestEventsResponseSchema,
} from "@packrun/proto/evidence/v1";
import { type NewEvent, validateBatch, validateChunk, validateEvent } from "./event-model.ts";
import { appendEvents } from "./event-store.ts";

/** Longest wait for the rest of a burst of requests before its first ones are committed. */
const gatherMs = 5;

/** Tuning of ingestion. */
export interface IngestLimits {
  /** Most events committed in one transaction. */
  maxBatch: number;
  /** Events read ahead from the stream while a batch commits (HTTP/2 flow control beyond). */
  maxQueued: number;
}

/**
 * Serves one IngestEvents stream. Requests are read ahead while the previous batch commits;
 * each batch is one transaction, and every event is acknowledged (in order) only after its
 * transaction committed. An invalid or refused event ends the stream with its error after the
 * events before it were acknowledged; the producer resends unacknowledged events on a new
 * stream and gets duplicates acknowledged with their original sequence.
 */
export async function* ingestEvents(
  deps: { database: Database; logger: Logger; limits: IngestLimits },
  requests: AsyncIterable<IngestEventsRequest>,
): AsyncGenerator<IngestEventsResponse> {
  const queue: IngestEventsRequest[] = [];
  let ended = false;
  let stopped = false;
  let failure: unknown;
  let wakeConsumer: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  const reader = (async () => {
    try {
      for await (const request of requests) {
        if (stopped) break;
        queue.push(request);
        wakeConsumer?.();
        while (queue.length >= deps.limits.maxQueued && !stopped) {
          await new Promise<void>((resolve) => (wakeReader = resolve));
        }
      }
    } catch (error) {
      failure = error;
    } finally {
      ended = true;
      wakeConsumer?.();
    }
  })();
  /**
   * Woken by the first request of a burst, waits for the rest of it before committing, so that
   * the burst is one transaction rather than its first request alone and then the others: a
   * client writes a stream's messages one at a time, so they arrive spread over a little time.
   * The burst is over when the stream ends (the usual case: a producer sends its batch and
   * closes), a batch is full, or no request came for a millisecond; and after `gatherMs` at most.
   */
  const gatherBurst = async () => {
    const started = performance.now();
    while (!ended && queue.length < deps.limits.maxBatch) {
      const before = queue.length;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wakeConsumer = resolve;
        timer = setTimeout(resolve, 1);
      });
      clearTimeout(timer);
      wakeConsumer = undefined;
      if (queue.length === before || performance.now() - started >= gatherMs) return;
    }
  };
  try {
    for (;;) {
      if (queue.length === 0) {
        if (ended) {
          if (failure !== undefined) throw failure;
          return;
        }
        await new Promise<void>((resolve) => {
          wakeConsumer = resolve;
          if (queue.length > 0 || ended) resolve();
        });
        wakeConsumer = undefined;
        await gatherBurst();
        continue;
      }
      const batch = queue.splice(0, deps.limits.maxBatch);
      wakeReader?.();
      const events: NewEvent[] = [];
      let invalid: unknown;
      for (const request of batch) {
        try {
          events.push(validateRequest(request));
        } catch (error) {
          invalid = error;
          break;
        }
      }
      if (events.length > 0) {
        const started = performance.now();
        const results = await appendEvents(deps.database, events);
        if (deps.logger.isLevelEnabled("debug")) {
          deps.logger.debug(
            {
              events: events.length,
              runIds: [...new Set(events.map((event) => event.runId))],
              ms: Math.round(performance.now() - started),
            },
            "events committed",
          );
        }
        for (const [index, result] of results.entries()) {
          if (!result.ok) throw result.error;
          yield create(IngestEventsResponseSchema, {
            idempotencyKey: events[index]?.idempotencyKey ?? "",
            sequence: BigInt(result.sequence),
            lastSequence: BigInt(result.lastSequence),
            duplicate: result.duplicate,
          });
        }
      }
      if (invalid !== undefined) throw invalid;
    }
  } finally {
    stopped = true;
    wakeReader?.();
    reader.catch(() => {});
  }
}

/** The event, the chunk or the batch of a request (exactly one must be set). */
function validateRequest(request: IngestEventsRequest): NewEvent {
  const set = [request.event, request.chunk, request.batch].filter((part) => part !== undefined);
  if (set.length > 1) {
    throw new PackrunError(
      "REQUEST_INVALID",
      "set either event or chunk or batch in a request, only one of them",
    );
  }
  if (request.batch !== undefined) return validateBatch(request.batch);
  if (request.chunk !== undefined) return validateChunk(request.chunk);
  return validateEvent(request.event);
}
