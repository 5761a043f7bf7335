import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { SpanKind } from "@opentelemetry/api";
import { createLogger } from "@packrun/logging";
import { type ReadableSpan, recordSpans } from "@packrun/telemetry";
import { afterAll, beforeAll, test } from "vitest";
import type { RunJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";

// Before any server starts: every span of this process is recorded.
const recorded = recordSpans();

const manifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: traced, version: 1.0.0}
spec:
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo hello"]}}
`;

const logLines: Record<string, unknown>[] = [];
let stack: GatewayStack;
let alice: RestClient;

beforeAll(async () => {
  const stream = new PassThrough();
  let pending = "";
  stream.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line !== "") logLines.push(JSON.parse(line));
  });
  stack = await startGatewayStack({
    logger: createLogger({ service: "test", level: "info", destination: stream }),
    metricsPorts: { planner: 0, executor: 0, evidence: 0 },
  });
  alice = restClient(stack.url, await stack.mintToken());
});
afterAll(() => stack.close());

/** Waits until the span `name` of `kind` in trace `traceId` has ended. */
async function spanNamed(traceId: string, name: string, kind: SpanKind): Promise<ReadableSpan> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const span = recorded
      .spans()
      .find((s) => s.spanContext().traceId === traceId && s.name === name && s.kind === kind);
    if (span !== undefined) return span;
    if (Date.now() > deadline) {
      const seen = recorded.spans().map((s) => `${s.name} (${s.spanContext().traceId})`);
      assert.fail(`no ${name} span in trace ${traceId}; spans: ${seen.join(", ")}`);
    }
    await sleep(20);
  }
}

function parentOf(span: ReadableSpan): ReadableSpan | undefined {
  const parentId = span.parentSpanContext?.spanId;
  return recorded.spans().find((s) => s.spanContext().spanId === parentId);
}

test("one submission is one trace: gateway request → executor SubmitRun → planner PlanPack", async () => {
  // The caller's own trace context is continued.
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const response = await alice.post<{ run: RunJson }>(
    "/api/runs",
    { manifest },
    { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
  );
  assert.equal(response.status, 201, JSON.stringify(response.body));

  const request = await spanNamed(traceId, "POST /api/runs", SpanKind.SERVER);
  assert.equal(request.parentSpanContext?.spanId, "00f067aa0ba902b7");
  assert.equal(request.attributes["http.route"], "/api/runs");
  assert.equal(request.attributes["http.request.method"], "POST");
  assert.equal(request.attributes["http.response.status_code"], 201);

  const submitServer = await spanNamed(
    traceId,
    "packrun.executor.v1.ExecutorService/SubmitRun",
    SpanKind.SERVER,
  );
  const submitClient = parentOf(submitServer);
  assert.equal(submitClient?.kind, SpanKind.CLIENT);
  assert.equal(submitClient?.name, "packrun.executor.v1.ExecutorService/SubmitRun");
  assert.equal(submitClient?.parentSpanContext?.spanId, request.spanContext().spanId);

  const planServer = await spanNamed(
    traceId,
    "packrun.planner.v1.PlannerService/PlanPack",
    SpanKind.SERVER,
  );
  const planClient = parentOf(planServer);
  assert.equal(planClient?.kind, SpanKind.CLIENT);
  assert.equal(planClient?.parentSpanContext?.spanId, submitServer.spanContext().spanId);

  // Log lines written while serving it carry its trace id, in the gateway and the executor.
  const requestLine = logLines.find((line) => line.msg === "request" && line.trace_id === traceId);
  assert.ok(requestLine, "the gateway's request log line carries the trace id");
  assert.equal(requestLine.route, "/api/runs");
  assert.equal(requestLine.span_id, request.spanContext().spanId);
  const executorLine = logLines.find(
    (line) => line.service === "executor" && line.msg === "run submitted",
  );
  assert.equal(executorLine?.trace_id, traceId);
  assert.equal(executorLine?.span_id, submitServer.spanContext().spanId);
});

test("a read spanning executor and evidence is one trace; probes are not traced", async () => {
  const { body } = await alice.post<{ run: RunJson }>("/api/runs", { manifest });
  recorded.reset();
  const response = await alice.get(`/api/runs/${body.run.id}/artifacts`);
  assert.equal(response.status, 200);
  await sleep(50);
  const request = recorded.spans().find((s) => s.name === "GET /api/runs/:id/artifacts");
  assert.ok(request);
  const traceId = request.spanContext().traceId;
  await spanNamed(traceId, "packrun.executor.v1.ExecutorService/GetRun", SpanKind.SERVER);
  await spanNamed(traceId, "packrun.evidence.v1.EvidenceService/ListArtifacts", SpanKind.SERVER);

  recorded.reset();
  assert.equal((await alice.get("/readyz")).status, 200);
  assert.equal((await alice.get("/metrics")).status, 200);
  await sleep(50);
  // (Background work, such as the executor shipping events to evidence, may trace meanwhile.)
  const probeSpans = recorded
    .spans()
    .map((s) => s.name)
    .filter((name) => /^GET |Health|GetRunStatistics/.test(name));
  assert.deepEqual(probeSpans, []);
});

test("each gRPC service serves Prometheus metrics with its RPC durations", async () => {
  const { planner, executor, evidence } = stack.metricsUrls;
  assert.ok(planner && executor && evidence);
  const executorMetrics = await (await fetch(executor)).text();
  assert.match(
    executorMetrics,
    /packrun_rpc_server_duration_seconds_count\{procedure="packrun\.executor\.v1\.ExecutorService\/SubmitRun",code="ok"\} [1-9]/,
  );
  assert.match(executorMetrics, /^packrun_executor_process_resident_memory_bytes /m);
  const plannerMetrics = await (await fetch(planner)).text();
  assert.match(
    plannerMetrics,
    /procedure="packrun\.planner\.v1\.PlannerService\/PlanPack",code="ok"\} [1-9]/,
  );
  const evidenceMetrics = await (await fetch(evidence)).text();
  assert.match(
    evidenceMetrics,
    /procedure="packrun\.evidence\.v1\.EvidenceService\/ListArtifacts"/,
  );
});
