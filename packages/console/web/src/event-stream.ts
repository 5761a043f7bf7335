import { EventSource } from "eventsource";
import { segment } from "./api.ts";
import type { RunEvent, RunState } from "./api-types.ts";
import { sessionToken } from "./session.ts";

/** How a run's event stream is doing. */
export type StreamStatus = "connecting" | "live" | "reconnecting" | "ended" | "closed";

/** What {@link followRunEvents} reports. */
export interface RunEventHandlers {
  /** New events in sequence order, batched per animation frame; never one twice. */
  onEvents(events: readonly RunEvent[]): void;
  onStatus(status: StreamStatus): void;
  /** The run finished and its stream ended. */
  onEnd?(state: RunState): void;
}

/**
 * Follows a run's event log over SSE (`GET /api/runs/{id}/logs`). A WHATWG EventSource whose
 * requests carry the bearer token in a header (a browser EventSource can send none, and the
 * token must stay out of the URL); after a dropped connection it reconnects with
 * `Last-Event-ID`, and events at or below the last sequence seen are dropped, so no line is lost
 * or shown twice. Returns the function that stops following.
 */
export function followRunEvents(runId: string, handlers: RunEventHandlers): () => void {
  let lastSequence = 0;
  let pending: RunEvent[] = [];
  let frame: number | undefined;
  const flush = () => {
    frame = undefined;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    handlers.onEvents(batch);
  };
  const source = new EventSource(`/api/runs/${segment(runId)}/logs`, {
    fetch: (input, init) => {
      const token = sessionToken();
      return fetch(input, {
        ...init,
        headers: {
          ...init.headers,
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
      });
    },
  });
  handlers.onStatus("connecting");
  source.addEventListener("open", () => handlers.onStatus("live"));
  source.addEventListener("error", () =>
    handlers.onStatus(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"),
  );
  source.addEventListener("run-event", (message) => {
    const event = JSON.parse(message.data) as RunEvent;
    if (event.sequence <= lastSequence) return;
    lastSequence = event.sequence;
    pending.push(event);
    frame ??= requestAnimationFrame(flush);
  });
  source.addEventListener("end", (message) => {
    source.close();
    if (frame !== undefined) cancelAnimationFrame(frame);
    flush();
    handlers.onStatus("ended");
    handlers.onEnd?.((JSON.parse(message.data) as { state: RunState }).state);
  });
  return () => {
    source.close();
    if (frame !== undefined) cancelAnimationFrame(frame);
  };
}
