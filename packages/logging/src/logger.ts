import { context, isSpanContextValid, trace } from "@opentelemetry/api";
import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger } from "pino";

/** Field names whose values never reach a log line, wherever they appear (two levels deep). */
const redactedKeys = ["secret", "secrets", "password", "token", "authorization", "privateKey"];

/**
 * `trace_id` and `span_id` of the span active where a line is written (an RPC or REST request
 * being served, an outgoing call), so log lines join their trace; nothing outside a span.
 */
function traceFields(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const ids = span.spanContext();
  return isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}

/** Options for {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Service name, e.g. "planner"; stamped on every line. */
  service: string;
  /** pino level; default "info". */
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to inspect output. */
  destination?: NodeJS.WritableStream;
}

/**
 * Creates the root logger of a service: JSON lines with `service`, ISO time, the active span's
 * `trace_id` and `span_id`, and secrets censored by key name. Use {@link runLogger} to add run
 * and step ids.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const paths = redactedKeys.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);
  const config: LoggerOptions = {
    level: options.level ?? "info",
    base: { service: options.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths, censor: "[redacted]" },
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
  };
  return options.destination === undefined
    ? pino(config)
    : pino(config, options.destination as pino.DestinationStream);
}

/** A child logger whose lines carry `runId` and, when given, `stepId` and `attempt`. */
export function runLogger(
  parent: Logger,
  ids: { runId: string; stepId?: string; attempt?: number },
): Logger {
  return parent.child(ids);
}
