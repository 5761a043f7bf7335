import { setTimeout as sleep } from "node:timers/promises";
import { type EventSourceMessage, EventSourceParserStream } from "eventsource-parser/stream";
import type { Problem, RunEvent, RunState } from "./api-types.ts";
import { CliError } from "./cli-error.ts";
import { type BackoffPolicy, backoffDelayMs, defaultBackoff, EventCursor } from "./event-cursor.ts";
import { ExitCode } from "./exit-codes.ts";
import { apiPath, type GatewayClient } from "./gateway-client.ts";
import { GatewayError } from "./gateway-error.ts";

/** What to stream and what to do with it. */
export interface RunEventStreamOptions {
  runId: string;
  /** Start after this sequence (0 = from the first event). */
  after?: number | undefined;
  /** Only this step's events. */
  step?: string | undefined;
  /** Keep streaming until the run finishes (true) or stop at what is stored now (false). */
  follow: boolean;
  /** Called once per event, in sequence order, never twice for the same sequence. */
  onEvent: (event: RunEvent) => void | Promise<void>;
  /** Called before each reconnection, e.g. to tell the user. */
  onReconnect?: (info: { failures: number; delayMs: number; reason: string }) => void;
  /** Stops streaming (the promise then resolves with `endState` undefined). */
  signal?: AbortSignal | undefined;
  /** Reconnection backoff (default 250 ms doubling to 5 s). */
  backoff?: BackoffPolicy | undefined;
  /** Give up after this many failed connections in a row without an event (default 10). */
  maxConsecutiveFailures?: number | undefined;
  /** Reconnect when nothing at all (not even a heartbeat) arrives for this long (default 60 s). */
  idleTimeoutMs?: number | undefined;
}

/** How a stream ended. */
export interface RunEventStreamResult {
  /** The run's state from the server's final `end` event; undefined when stopped early. */
  endState: RunState | undefined;
  /** The last sequence delivered. */
  lastSequence: number;
  /** Number of reconnections made. */
  reconnections: number;
}

/** One connection's outcome: the end event, a clean close without one, or a failure. */
type Attempt =
  | { kind: "end"; state: RunState | undefined }
  | { kind: "closed" }
  | { kind: "failed"; reason: string; cause?: unknown };

function parseJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

function isRunEvent(value: unknown): value is RunEvent {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  return typeof record.sequence === "number" && typeof record.type === "string";
}

/**
 * Reads one SSE connection until it ends, delivering new events through `cursor`. Returns how
 * it ended; throws only for a non-retryable error answer (auth, not found...).
 */
async function readOnce(
  client: GatewayClient,
  options: RunEventStreamOptions,
  cursor: EventCursor,
  onProgress: () => void,
): Promise<Attempt> {
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const connection = new AbortController();
  const stopOuter = () => connection.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", stopOuter, { once: true });
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => connection.abort(new Error("idle")), idleTimeoutMs);
  };
  try {
    armIdle();
    const resumeAt = cursor.lastSequence;
    let response: Response;
    try {
      response = await client.request("GET", apiPath("api", "runs", options.runId, "logs"), {
        query: {
          follow: options.follow,
          step: options.step,
          after: resumeAt > 0 ? resumeAt : undefined,
        },
        headers: {
          accept: "text/event-stream",
          ...(resumeAt > 0 ? { "last-event-id": String(resumeAt) } : {}),
        },
        signal: connection.signal,
        timeoutMs: null,
      });
    } catch (error) {
      if (options.signal?.aborted === true) return { kind: "end", state: undefined };
      if (connection.signal.aborted) return { kind: "failed", reason: "no answer in time" };
      if (error instanceof CliError && error.exitCode === ExitCode.retryable)
        return { kind: "failed", reason: error.message, cause: error };
      throw error;
    }
    // 204: the run has finished and we hold every event (only the `end` message was lost).
    if (response.status === 204) {
      const run = await client.json<{ state?: RunState }>(
        "GET",
        apiPath("api", "runs", options.runId),
        { signal: connection.signal },
      );
      return { kind: "end", state: run.state };
    }
    const body = response.body;
    if (body === null) return { kind: "failed", reason: "the answer had no body" };
    const tap = new TransformStream<string, string>({
      transform(chunk, controller) {
        armIdle();
        controller.enqueue(chunk);
      },
    });
    const messages = body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(tap)
      .pipeThrough(new EventSourceParserStream());
    try {
      for await (const message of messages as AsyncIterable<EventSourceMessage>) {
        const outcome = await handleMessage(message, options, cursor, onProgress);
        if (outcome !== undefined) return outcome;
      }
    } catch (error) {
      if (options.signal?.aborted === true) return { kind: "end", state: undefined };
      if (error instanceof CliError) throw error;
      const reason = connection.signal.aborted
        ? "no data (not even a heartbeat) in time"
        : "connection lost";
      return { kind: "failed", reason, cause: error };
    }
    if (options.signal?.aborted === true) return { kind: "end", state: undefined };
    return { kind: "closed" };
  } finally {
    clearTimeout(idle);
    options.signal?.removeEventListener("abort", stopOuter);
    connection.abort();
  }
}

async function handleMessage(
  message: EventSourceMessage,
  options: RunEventStreamOptions,
  cursor: EventCursor,
  onProgress: () => void,
): Promise<Attempt | undefined> {
  const type = message.event ?? "message";
  if (type === "end") {
    const data = parseJson(message.data) as { state?: RunState } | undefined;
    return { kind: "end", state: data?.state };
  }
  if (type === "error") {
    const problem = parseJson(message.data) as Problem | undefined;
    const error = new GatewayError(`${problem?.detail ?? problem?.title ?? "stream error"}`, {
      status: problem?.status ?? 500,
      code: problem?.code ?? "INTERNAL",
      ...(problem === undefined ? {} : { problem }),
    });
    if (error.exitCode === ExitCode.retryable)
      return { kind: "failed", reason: error.message, cause: error };
    throw error;
  }
  if (type !== "run-event" && type !== "message") return undefined;
  const event = parseJson(message.data);
  if (!isRunEvent(event)) {
    throw new CliError(
      `the log stream of run ${options.runId} sent a malformed event: ${message.data.slice(0, 200)}`,
      ExitCode.error,
    );
  }
  if (cursor.accept(event.sequence)) {
    onProgress();
    await options.onEvent(event);
  }
  return undefined;
}

/**
 * Streams a run's event log over SSE (`GET /api/runs/{id}/logs`) and delivers each event once,
 * in order. When the connection drops (or stays silent past the idle timeout, or closes before
 * the server's `end` event while following), it reconnects with `Last-Event-ID` = the last
 * sequence delivered, after a capped exponential backoff; events the server sends again are
 * dropped. Gives up (CliError, exit 10) after `maxConsecutiveFailures` failed connections in a
 * row; error answers that retrying cannot fix (401, 403, 404...) are thrown at once.
 */
export async function streamRunEvents(
  client: GatewayClient,
  options: RunEventStreamOptions,
): Promise<RunEventStreamResult> {
  const cursor = new EventCursor(options.after ?? 0);
  const maxFailures = options.maxConsecutiveFailures ?? 10;
  let failures = 0;
  let reconnections = 0;
  const onProgress = () => {
    failures = 0;
  };
  for (;;) {
    if (options.signal?.aborted === true)
      return { endState: undefined, lastSequence: cursor.lastSequence, reconnections };
    const outcome = await readOnce(client, options, cursor, onProgress);
    if (outcome.kind === "end")
      return { endState: outcome.state, lastSequence: cursor.lastSequence, reconnections };
    if (outcome.kind === "closed" && !options.follow)
      return { endState: undefined, lastSequence: cursor.lastSequence, reconnections };
    failures++;
    const reason = outcome.kind === "failed" ? outcome.reason : "the server closed the stream";
    if (failures > maxFailures) {
      throw new CliError(
        `lost the log stream of run ${options.runId} after ${maxFailures} attempts: ${reason} (retryable; resume with --after ${cursor.lastSequence})`,
        ExitCode.retryable,
        { cause: outcome.kind === "failed" ? outcome.cause : undefined },
      );
    }
    const delayMs = backoffDelayMs(failures, options.backoff ?? defaultBackoff);
    options.onReconnect?.({ failures, delayMs, reason });
    try {
      await sleep(
        delayMs,
        undefined,
        options.signal === undefined ? {} : { signal: options.signal },
      );
    } catch {
      return { endState: undefined, lastSequence: cursor.lastSequence, reconnections };
    }
    reconnections++;
  }
}
