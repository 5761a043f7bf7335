import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { tracerName } from "./rpc-tracing.ts";

const tracer = trace.getTracer(tracerName);
const spans = new WeakMap<IncomingMessage, Span>();

const headerGetter: TextMapGetter<IncomingMessage["headers"]> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** Options for {@link traceHttpRequests}. */
export interface HttpTracingOptions {
  /**
   * Paths (without query) handled in a trace that is not sampled, here or (through the
   * `traceparent` flags) in the services it calls: health probes and metric scrapes, which
   * would otherwise drown the real traces.
   */
  readonly untracedPaths?: readonly string[];
}

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * Wraps a Node.js HTTP request listener (e.g. the one Fastify hands a `serverFactory`): each
 * request gets a SERVER span continuing the caller's W3C trace context, active for everything
 * the request causes (hooks, body parsing, handlers, outgoing RPCs, log lines) until the
 * response closes. Name it after the route with {@link nameHttpSpan} once routing is done.
 */
export function traceHttpRequests(
  listener: RequestListener,
  options: HttpTracingOptions = {},
): RequestListener {
  const untraced = new Set(options.untracedPaths ?? []);
  const serve = (active: Context, request: IncomingMessage, response: ServerResponse) =>
    context.with(active, () => {
      // Stream events (the body arriving, the response finishing) run in the request's context.
      context.bind(active, request);
      context.bind(active, response);
      listener(request, response);
    });
  return (request, response) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    if (untraced.has(path)) {
      const unsampled = trace.wrapSpanContext({
        traceId: randomBytes(16).toString("hex"),
        spanId: randomBytes(8).toString("hex"),
        traceFlags: TraceFlags.NONE,
      });
      serve(trace.setSpan(ROOT_CONTEXT, unsampled), request, response);
      return;
    }
    const method = request.method ?? "GET";
    const parent = propagation.extract(ROOT_CONTEXT, request.headers, headerGetter);
    const span = tracer.startSpan(
      method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "http.request.method": method,
          "url.path": path,
          "url.scheme": "http",
          "network.protocol.version": request.httpVersion,
          ...(request.headers["user-agent"] === undefined
            ? {}
            : { "user_agent.original": request.headers["user-agent"] }),
        },
      },
      parent,
    );
    spans.set(request, span);
    response.once("close", () => {
      span.setAttribute("http.response.status_code", response.statusCode);
      if (response.statusCode >= 500)
        span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${response.statusCode}` });
      else if (!response.writableFinished) span.setAttribute("http.response.aborted", true);
      span.end();
    });
    serve(trace.setSpan(parent, span), request, response);
  };
}

/** Renames a request's span `METHOD /route/{template}` and records `http.route`. */
export function nameHttpSpan(request: IncomingMessage, route: string | undefined): void {
  const span = spans.get(request);
  if (span === undefined || route === undefined) return;
  span.updateName(`${request.method ?? "GET"} ${route}`);
  span.setAttribute("http.route", route);
}
