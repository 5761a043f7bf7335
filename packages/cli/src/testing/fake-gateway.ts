import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RunEvent } from "../api-types.ts";

/** One request the fake gateway received. */
export interface SeenRequest {
  method: string;
  url: URL;
  headers: IncomingMessage["headers"];
  body: string;
}

/** Answers one request; `index` counts the requests to the same path from 0. */
export type FakeHandler = (
  request: SeenRequest,
  response: ServerResponse,
  index: number,
) => void | Promise<void>;

/** A scripted HTTP server standing in for the gateway in unit tests. */
export interface FakeGateway {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * Test helper: starts an HTTP server on loopback whose answers are scripted per path
 * (`"GET /api/runs/r1/logs"` → handler). Unscripted requests get a 404 problem document.
 */
export async function startFakeGateway(
  routes: Readonly<Record<string, FakeHandler>>,
): Promise<FakeGateway> {
  const requests: SeenRequest[] = [];
  const counts = new Map<string, number>();
  const server = createServer(async (incoming, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const url = new URL(incoming.url ?? "/", "http://fake");
    const seen: SeenRequest = {
      method: incoming.method ?? "GET",
      url,
      headers: incoming.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    requests.push(seen);
    const key = `${seen.method} ${url.pathname}`;
    const index = counts.get(key) ?? 0;
    counts.set(key, index + 1);
    const handler = routes[key];
    if (handler === undefined) {
      sendProblem(response, 404, "RUN_NOT_FOUND", `nothing at ${url.pathname}`);
      return;
    }
    await handler(seen, response, index);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes an RFC 9457 problem document. */
export function sendProblem(
  response: ServerResponse,
  status: number,
  code: string,
  detail: string,
  errors?: unknown[],
): void {
  response.writeHead(status, { "content-type": "application/problem+json" });
  response.end(
    JSON.stringify({
      type: `https://packrun.dev/errors/${code}`,
      title: code,
      status,
      detail,
      code,
      ...(errors === undefined ? {} : { errors }),
    }),
  );
}

/** Writes a JSON answer. */
export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

/** A run event with `sequence` for step `stepId`. */
export function fakeEvent(sequence: number, message: string, stepId = "build"): RunEvent {
  return {
    sequence,
    time: new Date(Date.UTC(2026, 0, 1, 12, 0, sequence)).toISOString(),
    level: "info",
    type: "log.stdout",
    stepId,
    message,
  };
}

/** The SSE frame of one run event (`id:` = sequence, `event: run-event`). */
export function sseFrame(event: RunEvent): string {
  return `id: ${event.sequence}\nevent: run-event\ndata: ${JSON.stringify(event)}\n\n`;
}

/** Starts an SSE answer. */
export function startSse(response: ServerResponse): void {
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
  response.flushHeaders();
}
