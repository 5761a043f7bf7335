import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { ExecutorService, GetRunResponseSchema } from "@packrun/proto/executor/v1";
import { afterEach, test } from "vitest";
import { createRpcMetrics } from "./rpc-metrics.ts";
import { rpcClientTracing, rpcServerTracing } from "./rpc-tracing.ts";
import { recordSpans } from "./tracing.ts";

const recorded = recordSpans();
afterEach(() => recorded.reset());

/** What a handler saw of its trace: the incoming header and the active span's ids. */
interface Seen {
  traceparent: string | null;
  traceId: string | undefined;
  spanId: string | undefined;
}

function activeIds(): Pick<Seen, "traceId" | "spanId"> {
  const ids = trace.getSpan(context.active())?.spanContext();
  return { traceId: ids?.traceId, spanId: ids?.spanId };
}

function setup() {
  const seen: Seen[] = [];
  const metrics = createRpcMetrics("test");
  const transport = createRouterTransport(
    (router) =>
      router.service(ExecutorService, {
        async getRun(request, handlerContext) {
          await new Promise((resolve) => setImmediate(resolve));
          seen.push({
            traceparent: handlerContext.requestHeader.get("traceparent"),
            ...activeIds(),
          });
          if (request.runId === "missing") throw new ConnectError("no such run", Code.NotFound);
          return create(GetRunResponseSchema, {});
        },
        async *watchRun(_request, handlerContext) {
          for (let index = 0; index < 3; index++) {
            await new Promise((resolve) => setImmediate(resolve));
            seen.push({
              traceparent: handlerContext.requestHeader.get("traceparent"),
              ...activeIds(),
            });
            yield {};
          }
        },
      }),
    {
      router: { interceptors: [rpcServerTracing(metrics)] },
      transport: { interceptors: [rpcClientTracing()] },
    },
  );
  return { client: createClient(ExecutorService, transport), seen, metrics };
}

test("a unary call continues the caller's trace: client span → traceparent → server span", async () => {
  const { client, seen } = setup();
  const parent = trace.getTracer("test").startSpan("caller");
  await context.with(trace.setSpan(context.active(), parent), () =>
    client.getRun({ tenant: "acme", runId: "r1" }),
  );
  parent.end();
  const spans = recorded.spans();
  const clientSpan = spans.find((span) => span.kind === SpanKind.CLIENT);
  const serverSpan = spans.find((span) => span.kind === SpanKind.SERVER);
  assert.ok(clientSpan && serverSpan);
  const traceId = parent.spanContext().traceId;
  assert.equal(clientSpan.name, "packrun.executor.v1.ExecutorService/GetRun");
  assert.equal(serverSpan.name, "packrun.executor.v1.ExecutorService/GetRun");
  assert.equal(clientSpan.spanContext().traceId, traceId);
  assert.equal(clientSpan.parentSpanContext?.spanId, parent.spanContext().spanId);
  assert.equal(serverSpan.spanContext().traceId, traceId);
  assert.equal(serverSpan.parentSpanContext?.spanId, clientSpan.spanContext().spanId);
  assert.equal(serverSpan.parentSpanContext?.isRemote, true);
  assert.equal(serverSpan.attributes["rpc.system"], "grpc");
  assert.equal(serverSpan.attributes["rpc.service"], "packrun.executor.v1.ExecutorService");
  assert.equal(serverSpan.attributes["rpc.method"], "GetRun");
  assert.equal(serverSpan.attributes["rpc.grpc.status_code"], 0);
  // The handler ran inside the server span, after an await too.
  assert.equal(seen[0]?.traceparent, `00-${traceId}-${clientSpan.spanContext().spanId}-01`);
  assert.equal(seen[0]?.traceId, traceId);
  assert.equal(seen[0]?.spanId, serverSpan.spanContext().spanId);
});

test("a call without a caller's span starts a new trace shared by client and server", async () => {
  const { client } = setup();
  await client.getRun({ tenant: "acme", runId: "r1" });
  const [serverSpan, clientSpan] = recorded.spans();
  assert.equal(clientSpan?.parentSpanContext, undefined);
  assert.equal(serverSpan?.spanContext().traceId, clientSpan?.spanContext().traceId);
});

test("a failed call records the gRPC code; a caller's mistake is an error on the client side only", async () => {
  const { client, metrics } = setup();
  await assert.rejects(client.getRun({ tenant: "acme", runId: "missing" }));
  const spans = recorded.spans();
  assert.equal(spans.length, 2);
  for (const span of spans) assert.equal(span.attributes["rpc.grpc.status_code"], Code.NotFound);
  const clientSpan = spans.find((span) => span.kind === SpanKind.CLIENT);
  const serverSpan = spans.find((span) => span.kind === SpanKind.SERVER);
  assert.equal(clientSpan?.status.code, SpanStatusCode.ERROR);
  assert.equal(clientSpan?.status.message, "no such run");
  assert.equal(serverSpan?.status.code, SpanStatusCode.UNSET);
  const text = await metrics.registry.metrics();
  assert.match(
    text,
    /packrun_rpc_server_duration_seconds_count\{procedure="packrun\.executor\.v1\.ExecutorService\/GetRun",code="not_found"\} 1/,
  );
});

test("a server stream's spans cover the whole stream, and its handler runs in the server span", async () => {
  const { client, seen, metrics } = setup();
  let received = 0;
  for await (const _ of client.watchRun({ tenant: "acme", runId: "r1" })) {
    received++;
    // Not over yet: the spans end with the stream.
    assert.equal(recorded.spans().length, 0);
  }
  assert.equal(received, 3);
  const spans = recorded.spans();
  assert.deepEqual(spans.map((span) => span.kind).sort(), [SpanKind.SERVER, SpanKind.CLIENT]);
  const serverSpan = spans.find((span) => span.kind === SpanKind.SERVER);
  assert.equal(seen.length, 3);
  for (const entry of seen) assert.equal(entry.spanId, serverSpan?.spanContext().spanId);
  const text = await metrics.registry.metrics();
  assert.match(text, /procedure="packrun\.executor\.v1\.ExecutorService\/WatchRun",code="ok"\} 1/);
});

test("cancelling a stream ends its client span with CANCELLED", async () => {
  const { client } = setup();
  const abort = new AbortController();
  await assert.rejects(async () => {
    for await (const _ of client.watchRun(
      { tenant: "acme", runId: "r1" },
      { signal: abort.signal },
    ))
      abort.abort();
  });
  const clientSpan = recorded.spans().find((span) => span.kind === SpanKind.CLIENT);
  assert.equal(clientSpan?.attributes["rpc.grpc.status_code"], Code.Canceled);
  assert.equal(clientSpan?.status.code, SpanStatusCode.ERROR);
});
