import { once } from "node:events";
import { scopes } from "@packrun/auth";
import { terminalRunStates } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";
import type { Event } from "@packrun/proto/evidence/v1";
import type { FastifyReply } from "fastify";
import { Type } from "typebox";
import { runEventJson, runStateName } from "../api-json.ts";
import { LogsQuerySchema, RunIdParamsSchema } from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, mediaResponse, withProblems } from "../route-helpers.ts";
import { readRunEvents } from "../run-event-source.ts";

/** Where one log stream writes: SSE frames or NDJSON lines. */
interface EventSink {
  write(id: number, event: string, data: unknown): Promise<void>;
  end(): void;
}

// A client that stops reading gets this long before its connection is dropped; the evidence
// service cuts the subscription behind it soon after, so nothing grows without bound.
const stalledWriteLimitMs = 30_000;

async function withinStallLimit(write: Promise<void>, reply: FastifyReply): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      reply.log.warn("log stream client stopped reading; closing the connection");
      reply.raw.destroy();
      resolve();
    }, stalledWriteLimitMs);
  });
  try {
    await Promise.race([write, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Gathers the writes of one turn of the event loop into one socket write: a page of a run's
 * log arrives as many events at once, and a write (a system call) per line costs a flooded
 * gateway more than the lines themselves. The data goes out at the end of the turn.
 */
function coalescer(reply: FastifyReply): () => void {
  let corked = false;
  return () => {
    if (corked || reply.raw.writableEnded || reply.raw.destroyed) return;
    corked = true;
    reply.raw.cork();
    setImmediate(() => {
      corked = false;
      reply.raw.uncork();
    });
  };
}

function sseSink(reply: FastifyReply): EventSink {
  const sse = reply.sse;
  if (sse === undefined) throw new PackrunError("INTERNAL", "SSE is not enabled on this route");
  const coalesce = coalescer(reply);
  return {
    // The end message carries no id: a client that reconnects after it must not restart.
    write: (id, event, data) => {
      coalesce();
      return withinStallLimit(
        sse.send(id > 0 ? { id: String(id), event, data } : { event, data }),
        reply,
      );
    },
    end: () => sse.close(),
  };
}

function ndjsonSink(reply: FastifyReply): EventSink {
  const coalesce = coalescer(reply);
  return {
    async write(_id, _event, data) {
      // Headers go out with the first line, so earlier failures still get a problem document.
      if (!reply.raw.headersSent) {
        reply.hijack();
        reply.raw.writeHead(200, {
          "content-type": "application/x-ndjson; charset=utf-8",
          "cache-control": "no-store",
          "x-accel-buffering": "no",
        });
      }
      coalesce();
      if (!reply.raw.write(`${JSON.stringify(data)}\n`))
        await withinStallLimit(
          once(reply.raw, "drain").then(() => {}),
          reply,
        );
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
      let events: AsyncIterable<Event> = readRunEvents(clients, {
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
        const peeked = await finishedOrEvents(events, finishedPeekMs);
        if (peeked === "finished") {
          abort.abort();
          return reply.code(204).send();
        }
        events = peeked;
      }
      const sink = query.format === "ndjson" ? ndjsonSink(reply) : sseSink(reply);
      try {
        for await (const event of events) {
          if (abort.signal.aborted) break;
          const json = runEventJson(event);
          await sink.write(json.sequence, "run-event", json);
        }
        if (!abort.signal.aborted) {
          const { run: finished } = await clients.executor.getRun({
            tenant: principal.tenant,
            runId: run.id,
          });
          const state = runStateName(finished?.state ?? run.state);
          if (query.format === "ndjson") await sink.write(0, "end", { end: true, state });
          else await sink.write(0, "end", { state });
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
