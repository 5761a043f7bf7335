import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { context, SpanKind, trace } from "@opentelemetry/api";
import { PackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { Health } from "@packrun/proto/health/v1";
import { PlannerService, ValidateManifestResponseSchema } from "@packrun/proto/planner/v1";
import { recordSpans, rpcClientTracing } from "@packrun/telemetry";
import { afterAll, beforeAll, test } from "vitest";
import { type RpcServer, startRpcServer } from "./rpc-server.ts";

const recorded = recordSpans();
const logger = createLogger({ service: "test", level: "silent" });
let server: RpcServer;

beforeAll(async () => {
  server = await startRpcServer({
    logger,
    serviceNames: [PlannerService.typeName],
    metrics: { service: "planner", port: 0 },
    routes: (router) =>
      router.service(PlannerService, {
        validateManifest(request) {
          if (request.manifest === "bad") throw new PackrunError("PACK_SCHEMA", "bad manifest");
          return create(ValidateManifestResponseSchema, {});
        },
      }),
  });
});
afterAll(() => server.close());

const transport = () =>
  createGrpcTransport({ baseUrl: server.url, interceptors: [rpcClientTracing()] });

test("the metrics listener serves process metrics and RPC durations by procedure and code", async () => {
  const planner = createClient(PlannerService, transport());
  await planner.validateManifest({ manifest: "good" });
  await planner.validateManifest({ manifest: "good" });
  await assert.rejects(planner.validateManifest({ manifest: "bad" }));
  await createClient(Health, transport()).check({});
  assert.ok(server.metricsUrl);
  const response = await fetch(server.metricsUrl);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  const text = await response.text();
  assert.match(text, /# TYPE packrun_rpc_server_duration_seconds histogram/);
  const procedure = 'procedure="packrun.planner.v1.PlannerService/ValidateManifest"';
  assert.ok(text.includes(`packrun_rpc_server_duration_seconds_count{${procedure},code="ok"} 2`));
  assert.ok(
    text.includes(
      `packrun_rpc_server_duration_seconds_count{${procedure},code="invalid_argument"} 1`,
    ),
  );
  assert.ok(text.includes('procedure="grpc.health.v1.Health/Check",code="ok"} 1'));
  assert.match(text, /^packrun_planner_process_cpu_user_seconds_total /m);
  assert.equal((await fetch(server.metricsUrl.replace("/metrics", "/other"))).status, 404);
});

test("a call over HTTP/2 continues the caller's trace in a SERVER span; health checks are not traced", async () => {
  recorded.reset();
  const parent = trace.getTracer("test").startSpan("caller");
  await context.with(trace.setSpan(context.active(), parent), async () => {
    await createClient(PlannerService, transport()).validateManifest({ manifest: "good" });
    await createClient(Health, transport()).check({});
  });
  parent.end();
  const spans = recorded.spans().filter((span) => span.name !== "caller");
  assert.deepEqual(spans.map((span) => span.name).sort(), [
    "packrun.planner.v1.PlannerService/ValidateManifest",
    "packrun.planner.v1.PlannerService/ValidateManifest",
  ]);
  const serverSpan = spans.find((span) => span.kind === SpanKind.SERVER);
  const clientSpan = spans.find((span) => span.kind === SpanKind.CLIENT);
  assert.equal(serverSpan?.spanContext().traceId, parent.spanContext().traceId);
  assert.equal(serverSpan?.parentSpanContext?.spanId, clientSpan?.spanContext().spanId);
});

test("without metrics options there is no metrics listener", async () => {
  const plain = await startRpcServer({ logger, serviceNames: [], routes: () => {} });
  assert.equal(plain.metricsUrl, undefined);
  await plain.close();
});
