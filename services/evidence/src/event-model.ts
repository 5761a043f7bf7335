import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type EventLevelName,
  eventLevels,
  type TranscriptEvent,
  terminalEventTypes,
} from "@packrun/attestation";
import { PackrunError } from "@packrun/errors";
import {
  type Event,
  type EventBatch,
  EventLevel,
  EventSchema,
  type LogChunk,
} from "@packrun/proto/evidence/v1";
import { requireIdentifier } from "./identifiers.ts";

/** An event as stored in `evidence.events`. */
export interface EventRow {
  run_id: string;
  sequence: number;
  idempotency_key: string;
  time: Date;
  /** 1 trace .. 5 error */
  level: number;
  type: string;
  step_id: string;
  message: string;
  metadata: JsonObject;
}

/** A validated event on its way into the log (no sequence yet). */
export interface NewEvent {
  tenant: string;
  runId: string;
  idempotencyKey: string;
  time: Date;
  level: number;
  type: string;
  stepId: string;
  message: string;
  /** The metadata object as JSON text (what the size limit applies to and what is stored). */
  metadataJson: string;
  /**
   * Set for a chunk of log lines or a batch of events (then `type` is {@link chunkType} or
   * {@link batchType} and the event itself is not stored): the lines, each taking its own
   * sequence, stored together as one row.
   */
  lines?: readonly NewLine[];
}

/**
 * One validated line of a chunk or a batch; its tenant and run are the chunk's, and so is its
 * step unless it has its own (the events of a batch).
 */
export type NewLine = Pick<
  NewEvent,
  "idempotencyKey" | "time" | "level" | "type" | "message" | "metadataJson"
> & { stepId?: string };

/** The type of a {@link NewEvent} that stands for a chunk of log lines (never stored). */
export const chunkType = "log.chunk";

/** The type of a {@link NewEvent} that stands for a batch of events (never stored). */
export const batchType = "run.batch";

/** Size limits for one event, and for one chunk of log lines. */
export const eventLimits = Object.freeze({
  messageBytes: 256 * 1024,
  metadataBytes: 64 * 1024,
  stepIdLength: 500,
  idempotencyKeyLength: 200,
  /** Most lines in one chunk (and events in one batch). */
  chunkLines: 10_000,
  /** Most bytes of messages and metadata in one chunk (a producer aims at about 64 KiB). */
  chunkBytes: 4 * 1024 * 1024,
});

const eventType = /^(run|step|log|artifact|gate)\.[a-z0-9][a-z0-9._-]{0,99}$/;

/** True for run.succeeded, run.failed and run.cancelled: nothing may follow them. */
export function isTerminalType(type: string): boolean {
  return Object.hasOwn(terminalEventTypes, type);
}

// PostgreSQL text and jsonb cannot hold U+0000; the log keeps a visible replacement instead.
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is exactly what it replaces
const nul = /\u0000/g;
const replaceNul = (text: string) => text.replace(nul, "\uFFFD");

function withoutNul(value: JsonValue): JsonValue {
  if (typeof value === "string") return replaceNul(value);
  if (Array.isArray(value)) return value.map(withoutNul);
  if (value !== null && typeof value === "object") {
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) out[replaceNul(key)] = withoutNul(item);
    return out;
  }
  return value;
}

/** Level number (1..5) of a proto level; UNSPECIFIED means info. */
export function levelNumber(level: EventLevel): number {
  if (level === EventLevel.UNSPECIFIED) return EventLevel.INFO;
  if (level < EventLevel.TRACE || level > EventLevel.ERROR) {
    throw new PackrunError("REQUEST_INVALID", `event.level ${level} is not a known level`);
  }
  return level;
}

/** Name of a stored level number. */
export function levelName(level: number): EventLevelName {
  return eventLevels[level - 1] ?? "info";
}

/**
 * Validates an ingested event and normalises it (UTC time, NUL characters replaced).
 * @throws PackrunError REQUEST_INVALID saying which field is wrong
 */
export function validateEvent(event: Event | undefined): NewEvent {
  if (event === undefined) throw new PackrunError("REQUEST_INVALID", "event is required");
  const tenant = requireIdentifier("event.tenant", event.tenant);
  const runId = requireIdentifier("event.run_id", event.runId);
  const key = event.idempotencyKey;
  if (key.length === 0 || key.length > eventLimits.idempotencyKeyLength) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `event.idempotency_key must be 1-${eventLimits.idempotencyKeyLength} characters`,
    );
  }
  if (!eventType.test(event.type)) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `event.type ${JSON.stringify(event.type.slice(0, 120))} must be run.*, step.*, log.*, artifact.* or gate.* (lowercase)`,
    );
  }
  if (event.stepId.length > eventLimits.stepIdLength) {
    throw new PackrunError("REQUEST_INVALID", "event.step_id is too long");
  }
  if (Buffer.byteLength(event.message) > eventLimits.messageBytes) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `event.message exceeds ${eventLimits.messageBytes} bytes; split or truncate log lines`,
    );
  }
  const metadataJson = JSON.stringify(withoutNul(event.metadata ?? {}));
  if (Buffer.byteLength(metadataJson) > eventLimits.metadataBytes) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `event.metadata exceeds ${eventLimits.metadataBytes} bytes`,
    );
  }
  const time = event.time === undefined ? new Date() : timestampDate(event.time);
  if (Number.isNaN(time.getTime()))
    throw new PackrunError("REQUEST_INVALID", "event.time is invalid");
  return {
    tenant,
    runId,
    idempotencyKey: replaceNul(key),
    time,
    level: levelNumber(event.level),
    type: event.type,
    stepId: replaceNul(event.stepId),
    message: replaceNul(event.message),
    metadataJson,
  };
}

const logType = /^log\./;

/**
 * Validates an ingested chunk of log lines and normalises it like {@link validateEvent}: the
 * result is a {@link NewEvent} of type {@link chunkType} whose `lines` take one sequence each.
 * @throws PackrunError REQUEST_INVALID saying which field (of which line) is wrong
 */
export function validateChunk(chunk: LogChunk): NewEvent {
  const head = validateEvent({
    ...chunk,
    $typeName: "packrun.evidence.v1.Event",
    type: chunkType,
    sequence: 0n,
    level: EventLevel.INFO,
    message: "",
  });
  if (chunk.lines.length === 0 || chunk.lines.length > eventLimits.chunkLines) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `chunk.lines must hold 1-${eventLimits.chunkLines} lines`,
    );
  }
  let bytes = 0;
  const lines = chunk.lines.map((line, index): NewLine => {
    let valid: NewEvent;
    try {
      if (!logType.test(line.type))
        throw new PackrunError("REQUEST_INVALID", "event.type must be log.*");
      valid = validateEvent({ ...line, tenant: chunk.tenant, runId: chunk.runId, stepId: "" });
    } catch (error) {
      if (!(error instanceof PackrunError)) throw error;
      throw new PackrunError("REQUEST_INVALID", `chunk.lines[${index}]: ${error.message}`);
    }
    bytes += Buffer.byteLength(valid.message) + valid.metadataJson.length;
    const { idempotencyKey, time, level, type, message, metadataJson } = valid;
    return { idempotencyKey, time, level, type, message, metadataJson };
  });
  if (bytes > eventLimits.chunkBytes) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `chunk.lines exceed ${eventLimits.chunkBytes} bytes together; send smaller chunks`,
    );
  }
  return { ...head, lines };
}

/** The proto message of a stored event. */
export function eventMessage(row: EventRow, tenant: string): Event {
  return create(EventSchema, {
    tenant,
    runId: row.run_id,
    sequence: BigInt(row.sequence),
    idempotencyKey: row.idempotency_key,
    time: timestampFromDate(row.time),
    level: row.level as EventLevel,
    type: row.type,
    stepId: row.step_id,
    message: row.message,
    metadata: row.metadata,
  });
}

/** The transcript.ndjson form of a stored event. */
export function transcriptEvent(row: EventRow): TranscriptEvent {
  return {
    sequence: row.sequence,
    runId: row.run_id,
    time: row.time.toISOString(),
    level: levelName(row.level),
    type: row.type,
    stepId: row.step_id,
    message: row.message,
    metadata: row.metadata,
    idempotencyKey: row.idempotency_key,
  };
}

/**
 * Validates an ingested batch of events (one producer transaction) and normalises each event
 * like {@link validateEvent}: the result is a {@link NewEvent} of type {@link batchType} whose
 * `lines` are the events, each keeping its own key and step and taking one sequence.
 * @throws PackrunError REQUEST_INVALID naming the batch's event that is wrong
 */
export function validateBatch(batch: EventBatch): NewEvent {
  const head = validateEvent({
    ...batch,
    $typeName: "packrun.evidence.v1.Event",
    type: batchType,
    sequence: 0n,
    level: EventLevel.INFO,
    stepId: "",
    message: "",
  });
  if (batch.events.length === 0 || batch.events.length > eventLimits.chunkLines) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `batch.events must hold 1-${eventLimits.chunkLines} events`,
    );
  }
  const lines = batch.events.map((event, index): NewLine => {
    try {
      if (logType.test(event.type))
        throw new PackrunError("REQUEST_INVALID", "event.type log.* travels in chunks");
      if (isTerminalType(event.type) && index !== batch.events.length - 1)
        throw new PackrunError("REQUEST_INVALID", `${event.type} must be the batch's last event`);
      const valid = validateEvent({ ...event, tenant: batch.tenant, runId: batch.runId });
      const { idempotencyKey, time, level, type, stepId, message, metadataJson } = valid;
      return { idempotencyKey, time, level, type, stepId, message, metadataJson };
    } catch (error) {
      if (!(error instanceof PackrunError)) throw error;
      throw new PackrunError("REQUEST_INVALID", `batch.events[${index}]: ${error.message}`);
    }
  });
  return { ...head, lines };
}
