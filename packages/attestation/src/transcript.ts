import { canonicalJson } from "@packrun/planning";
import type { JsonValue } from "./evidence-json.ts";

/** Event severities, lowest first. */
export const eventLevels = ["trace", "debug", "info", "warn", "error"] as const;

/** An event severity. */
export type EventLevelName = (typeof eventLevels)[number];

/** The event types that end a run, with the run status each one means. */
export const terminalEventTypes: Readonly<
  Record<string, "succeeded" | "failed" | "cancelled" | "timed_out">
> = Object.freeze({
  "run.succeeded": "succeeded",
  "run.failed": "failed",
  "run.cancelled": "cancelled",
  "run.timed_out": "timed_out",
});

/** One event as transcript.ndjson records it. */
export interface TranscriptEvent {
  sequence: number;
  runId: string;
  /** RFC 3339 UTC, millisecond precision. */
  time: string;
  level: EventLevelName;
  type: string;
  /** "" for run-level events. */
  stepId: string;
  message: string;
  metadata: { [key: string]: JsonValue };
  idempotencyKey: string;
}

/** One transcript.ndjson line: the event's RFC 8785 canonical JSON and a newline. */
export function transcriptLine(event: TranscriptEvent): string {
  return `${canonicalJson(event)}\n`;
}
