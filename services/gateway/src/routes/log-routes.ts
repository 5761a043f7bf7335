import { once } from "node:events";
import { scopes } from "@packrun/auth";
import { terminalRunStates } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";
import type { Event } from "@packrun/proto/evidence/v1";
import type { FastifyReply } from "fastify";
import { Type } from "typebox";
import { runEventJson, runStateName } from "../api-json.ts";
import { LogsQuerySchema, type RunEventJson, RunIdParamsSchema } from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, mediaResponse, withProblems } from "../route-helpers.ts";
import { readRunEventBatches } from "../run-event-source.ts";

/**
 * Where one log stream writes: SSE frames or NDJSON lines. A batch of events (one message from
 * the evidence service, up to a page) becomes one string and one socket write: under a flood a
 * write, a promise and a timer per line cost the gateway more than the lines themselves.
 */
interface EventSink {
  writeEvents(events: readonly RunEventJson[]): Promise<void>;
  /** The last message: the run's final state. */
  writeEnd(state: string): Promise<void>;
  end(): void;
}

// A client that stops reading gets this long before its connection is dropped; the evidence
// service cuts the subscription behind it soon after, so nothing grows without bound.
const stalledWriteLimitMs = 30_000;

/**
 * Writes `text` and, when the socket's buffer is full, waits for it to drain (at most the stall
 * limit): the next batch is only read from the evidence service once this one is taken, so a
 * slow client holds at most one batch in the gateway.
 */
async function writeText(reply: FastifyReply, text: string): Promise<void> {
  if (reply.raw.destroyed) return;
  if (reply.raw.write(text)) return;
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      reply.log.warn("log stream client stopped reading; closing the connection");
      reply.raw.destroy();
      resolve();
    }, stalledWriteLimitMs);
  });
  try {
    // A client that goes away ends the wait too: its stream is over.
    await Promise.race([
      once(reply.raw, "drain").then(() => {}),
      once(reply.raw, "close").then(() => {}),
      stalled,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One SSE message; JSON never contains a line break, so `data` is one line. */
function sseFrame(id: number | undefined, event: string, data: unknown): string {
  const head = id === undefined ? "" : `id: ${id}\n`;
  return `${head}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function sseSink(reply: FastifyReply): EventSink {
  const sse = reply.sse;
  if (sse === undefined) throw new PackrunError("INTERNAL", "SSE is not enabled on this route");
  return {
    writeEvents(events) {
      sse.sendHeaders();
      let text = "";
      for (const event of events) text += sseFrame(event.sequence, "run-event", event);
      return writeText(reply, text);
    },
    // The end message carries no id: a client that reconnects after it must not restart.
    writeEnd(state) {
      sse.sendHeaders();
      return writeText(reply, sseFrame(undefined, "end", { state }));
    },
    end: () => sse.close(),
  };
}

function ndjsonSink(reply: FastifyReply): EventSink {
  // Headers go out with the first line, so earlier failures still get a problem document.
  const sendHeaders = () => {
    if (reply.raw.headersSent) return;
    reply.hijack();
    reply.raw.writeHead(200, {
      "content-type": "application/x-ndjson; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    });
  };
  return {
    writeEvents(events) {
      sendHeaders();
      let text = "";
      for (const event of events) text += `${JSON.stringify(event)}\n`;
      return writeText(reply, text);
    },
    writeEnd(state) {
      sendHeaders();
      return writeText(reply, `${JSON.stringify({ end: true, state })}\n`);
    },
    end: () => reply.raw.end(),
  };
}

// How long a reconnect to a finished run's stream waits to learn whether anything is left.
const finishedPeekMs = 2_000;

/**
 * Whether `events` ends without a single event within `waitMs`: "finished", or an iterable
 * giving the same events (the first one already fetched) for the caller to stream.
 */
async function finishedOrEvents<T>(
  events: AsyncIterable<T>,
  waitMs: number,
): Promise<"finished" | AsyncIterable<T>> {
  const iterator = events[Symbol.asyncIterator]();
  const first = iterator.next();
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<"waiting">((resolve) => {
    timer = setTimeout(() => resolve("waiting"), waitMs);
  });
  const outcome = await Promise.race([first, waited]).finally(() => clearTimeout(timer));
  if (outcome !== "waiting" && outcome.done === true) return "finished";
  return {
    async *[Symbol.asyncIterator]() {
      const head = await first;
      if (head.done === true) return;
      yield head.value;
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) return;
        yield next.value;
      }
    },
  };
}

/** A run's log: SSE (`id:` = sequence, resumable with Last-Event-ID) or NDJSON. */
export function registerLogRoutes(app: GatewayApp, context: GatewayContext): void {
  const { clients } = context;
  app.get(
    "/api/runs/:id/logs",
    {
      sse: { kind: "manual", heartbeat: true },
      config: { scope: scopes.read },
      schema: {
        tags: ["runs"],
        operationId: "streamRunLogs",
        summary: "Stream a run's ordered event log (SSE, or NDJSON with ?format=ndjson)",
        description:
          "A reconnect (Last-Event-ID) to a finished run's stream with nothing after that id answers 204, which stops an EventSource from reconnecting. Each SSE message has `id:` = the event's sequence, `event: run-event` and the RunEvent JSON as data; reconnect with Last-Event-ID (or ?after=) to resume without gaps or repeats. When the run has finished the stream replays and ends with `event: end` ({state}). Comment heartbeats keep idle connections open. NDJSON gives one RunEvent per line and a final {end: true, state} line.",
        security: bearerSecurity(scopes.read),
        params: RunIdParamsSchema,
        querystring: LogsQuerySchema,
        headers: Type.Object({
          "last-event-id": Type.Optional(
            Type.String({
              description:
                "The last sequence received: resume after it (204 when the run has finished and there is nothing after it).",
            }),
          ),
        }),
        response: withProblems({
          200: mediaResponse(
            "The event stream: SSE, or NDJSON with ?format=ndjson",
            ["text/event-stream", "application/x-ndjson"],
            Type.String(),
          ),
          204: {
            description:
              "The run has finished and the client (by Last-Event-ID) has every event: nothing more will come",
            type: "null",
          },
        }),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const query = request.query;
      const { run } = await clients.executor.getRun({
        tenant: principal.tenant,
        runId: request.params.id,
      });
      if (run === undefined)
        throw new PackrunError("RUN_NOT_FOUND", `run ${request.params.id} not found`);
      const lastEventId = request.headers["last-event-id"];
      const resumeAfter =
        typeof lastEventId === "string" && /^\d{1,15}$/.test(lastEventId.trim())
          ? Number(lastEventId.trim())
          : undefined;
      const abort = new AbortController();
      reply.raw.on("close", () => abort.abort());
      let batches: AsyncIterable<readonly Event[]> = readRunEventBatches(clients, {
        tenant: principal.tenant,
        runId: run.id,
        afterSequence: query.after ?? resumeAfter ?? 0,
        stepId: query.step ?? "",
        follow: query.follow ?? true,
        firstEventWaitMs: context.firstEventWaitMs,
        signal: abort.signal,
      });
      // An EventSource reconnects ~3 s after every close, `event: end` included, forever;
      // 204 is what makes it stop (HTML Living Standard, server-sent events §9.2.3). So a
      // reconnect (Last-Event-ID) to a finished run with nothing after that id gets 204.
      if (
        query.format !== "ndjson" &&
        resumeAfter !== undefined &&
        terminalRunStates.has(runStateName(run.state))
      ) {
        const peeked = await finishedOrEvents(batches, finishedPeekMs);
        if (peeked === "finished") {
          abort.abort();
          return reply.code(204).send();
        }
        batches = peeked;
      }
      const sink = query.format === "ndjson" ? ndjsonSink(reply) : sseSink(reply);
      try {
        for await (const batch of batches) {
          if (abort.signal.aborted) break;
          await sink.writeEvents(batch.map(runEventJson));
        }
        if (!abort.signal.aborted) {
          const { run: finished } = await clients.executor.getRun({
            tenant: principal.tenant,
            runId: run.id,
          });
          const state = runStateName(finished?.state ?? run.state);
          await sink.writeEnd(state);
        }
      } catch (error) {
        // Headers are out: the only honest signal left is closing the stream; the client
        // resumes from its last sequence.
        if (!reply.raw.headersSent) throw error;
        if (!abort.signal.aborted)
          request.log.warn({ err: error, runId: run.id }, "log stream ended early");
      } finally {
        abort.abort();
      }
      if (reply.raw.headersSent) sink.end();
    },
  );
}
