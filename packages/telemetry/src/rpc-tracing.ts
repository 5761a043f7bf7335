import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";
import type { RpcMetrics } from "./rpc-metrics.ts";

/** Name of the tracer of packrun's own instrumentation. */
export const tracerName = "@packrun/telemetry";

const tracer = trace.getTracer(tracerName);

/** Services whose calls are not traced: probes would bury the interesting traces. */
const untracedServices = new Set(["grpc.health.v1.Health"]);

const headerSetter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

/** `packrun.planner.v1.PlannerService/PlanPack` */
export function procedureName(request: {
  service: { typeName: string };
  method: { name: string };
}): string {
  return `${request.service.typeName}/${request.method.name}`;
}

/** Connect's code names as on the wire, e.g. `invalid_argument`; `ok` for success. */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  return (Code[code] ?? "unknown").replace(/[a-z](?=[A-Z])/g, "$&_").toLowerCase();
}

function rpcAttributes(request: {
  service: { typeName: string };
  method: { name: string };
}): Attributes {
  return {
    "rpc.system": "grpc",
    "rpc.service": request.service.typeName,
    "rpc.method": request.method.name,
  };
}

/**
 * Codes that make a SERVER span an error (the OpenTelemetry gRPC conventions): the others, such
 * as NOT_FOUND or INVALID_ARGUMENT, are the caller's problem, and are errors on CLIENT spans only.
 */
const serverErrorCodes = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/** Records the outcome of one RPC on its span, ends it, and returns the code (undefined = OK). */
function endSpan(span: Span, kind: SpanKind, error: unknown): Code | undefined {
  if (error === undefined) {
    span.setAttribute("rpc.grpc.status_code", 0);
    span.end();
    return undefined;
  }
  const connectError = ConnectError.from(error);
  span.setAttribute("rpc.grpc.status_code", connectError.code);
  if (kind === SpanKind.CLIENT || serverErrorCodes.has(connectError.code))
    span.setStatus({ code: SpanStatusCode.ERROR, message: connectError.rawMessage });
  span.end();
  return connectError.code;
}

/**
 * Iterates `stream` with `active` as the active context at every step (so a streaming handler's
 * work, logs and outgoing calls belong to its span), then calls `done` exactly once: on the end
 * of the stream, its error, the consumer leaving early, or the call being cancelled. (A Connect
 * client that stops reading without aborting the call leaves it open, and so its span.)
 */
function traceStream<T>(
  stream: AsyncIterable<T>,
  active: Context,
  signal: AbortSignal,
  done: (error: unknown) => void,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const iterator = stream[Symbol.asyncIterator]();
      let finished = false;
      const onAbort = () => finish(ConnectError.from(signal.reason, Code.Canceled));
      const finish = (error: unknown) => {
        if (finished) return;
        finished = true;
        signal.removeEventListener("abort", onAbort);
        done(error);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort);
      const step = async (
        call: () => Promise<IteratorResult<T>>,
        endOnDone: boolean,
      ): Promise<IteratorResult<T>> => {
        try {
          const result = await context.with(active, call);
          if (result.done === true || !endOnDone) finish(undefined);
          return result;
        } catch (error) {
          finish(error);
          throw error;
        }
      };
      return {
        next: () => step(() => iterator.next(), true),
        return: (value?: unknown) =>
          step(
            () =>
              iterator.return === undefined
                ? Promise.resolve({ done: true, value } as IteratorResult<T>)
                : iterator.return(value),
            false,
          ),
        throw: (error?: unknown) =>
          step(
            () => (iterator.throw === undefined ? Promise.reject(error) : iterator.throw(error)),
            false,
          ),
      };
    },
  };
}

/**
 * Client interceptor: a CLIENT span per RPC named `package.Service/Method` (covering the whole
 * stream for streaming RPCs), child of the caller's active span, with the W3C `traceparent` /
 * `tracestate` of that span sent in the request headers.
 */
export function rpcClientTracing(): Interceptor {
  return (next) => async (request) => {
    if (untracedServices.has(request.service.typeName)) return next(request);
    const span = tracer.startSpan(procedureName(request), {
      kind: SpanKind.CLIENT,
      attributes: { ...rpcAttributes(request), ...serverAddress(request.url) },
    });
    const active = trace.setSpan(context.active(), span);
    propagation.inject(active, request.header, headerSetter);
    try {
      const response = await context.with(active, () => next(request));
      if (!response.stream) {
        endSpan(span, SpanKind.CLIENT, undefined);
        return response;
      }
      return {
        ...response,
        message: traceStream(response.message, active, request.signal, (error) =>
          endSpan(span, SpanKind.CLIENT, error),
        ),
      };
    } catch (error) {
      endSpan(span, SpanKind.CLIENT, error);
      throw error;
    }
  };
}

function serverAddress(url: string): Attributes {
  try {
    const parsed = new URL(url);
    return {
      "server.address": parsed.hostname,
      ...(parsed.port === "" ? {} : { "server.port": Number(parsed.port) }),
    };
  } catch {
    return {};
  }
}

/**
 * Server interceptor: continues the caller's trace from the request headers and runs the handler
 * inside a SERVER span named `package.Service/Method` (for streaming responses, until the stream
 * ends). With `metrics`, records every call's duration by procedure and code. Put it first, so it
 * sees the codes the error mapping produces.
 */
export function rpcServerTracing(metrics?: RpcMetrics): Interceptor {
  return (next) => async (request) => {
    const procedure = procedureName(request);
    const started = performance.now();
    const observe = (code: Code | undefined) =>
      metrics?.duration.observe(
        { procedure, code: codeName(code) },
        (performance.now() - started) / 1000,
      );
    if (untracedServices.has(request.service.typeName)) {
      try {
        const response = await next(request);
        if (!response.stream) observe(undefined);
        return response;
      } catch (error) {
        observe(ConnectError.from(error).code);
        throw error;
      }
    }
    const parent = propagation.extract(ROOT_CONTEXT, request.header, headerGetter);
    const span = tracer.startSpan(
      procedure,
      { kind: SpanKind.SERVER, attributes: rpcAttributes(request) },
      parent,
    );
    const active = trace.setSpan(parent, span);
    try {
      const response = await context.with(active, () => next(request));
      if (!response.stream) {
        observe(endSpan(span, SpanKind.SERVER, undefined));
        return response;
      }
      return {
        ...response,
        message: traceStream(response.message, active, request.signal, (error) =>
          observe(endSpan(span, SpanKind.SERVER, error)),
        ),
      };
    } catch (error) {
      observe(endSpan(span, SpanKind.SERVER, error));
      throw error;
    }
  };
}
