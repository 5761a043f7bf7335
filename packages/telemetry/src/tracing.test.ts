import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { context, trace } from "@opentelemetry/api";
import { test } from "vitest";
import { initTelemetry, samplerFromEnv } from "./tracing.ts";

test("the sampler follows OTEL_TRACES_SAMPLER, parent-based always-on by default", () => {
  assert.match(samplerFromEnv({}).toString(), /ParentBased\{root=AlwaysOnSampler/);
  assert.equal(
    samplerFromEnv({ OTEL_TRACES_SAMPLER: "always_off" }).toString(),
    "AlwaysOffSampler",
  );
  assert.match(
    samplerFromEnv({
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
    }).toString(),
    /ParentBased\{root=TraceIdRatioBased\{0\.25\}/,
  );
});

test("OTEL_SDK_DISABLED=true leaves tracing off", async () => {
  const shutdown = initTelemetry({ serviceName: "x", env: { OTEL_SDK_DISABLED: "true" } });
  const span = trace.getTracer("test").startSpan("nothing");
  assert.equal(span.isRecording(), false);
  span.end();
  await shutdown();
});

test("with an OTLP endpoint, spans are exported with the service's resource; init is idempotent", async () => {
  const bodies: string[] = [];
  const collector = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    request.on("end", () => {
      if (request.url === "/v1/traces") bodies.push(body);
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const { port } = collector.address() as AddressInfo;
  try {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/` };
    const shutdown = initTelemetry({ serviceName: "packrun-planner", env });
    assert.equal(initTelemetry({ serviceName: "other", env }), shutdown);
    const tracer = trace.getTracer("test");
    const parent = tracer.startSpan("outer");
    context.with(trace.setSpan(context.active(), parent), () => tracer.startSpan("inner").end());
    parent.end();
    await shutdown();
    const text = bodies.join("\n");
    assert.match(text, /"service\.name","value":\{"stringValue":"packrun-planner"\}/);
    assert.match(text, /"service\.version"/);
    assert.match(text, /"name":"outer"/);
    assert.match(text, /"name":"inner"/);
    const traceIds = new Set([...text.matchAll(/"traceId":"([0-9a-f]{32})"/g)].map((m) => m[1]));
    assert.equal(traceIds.size, 1);
  } finally {
    collector.closeAllConnections();
    await new Promise((resolve) => collector.close(resolve));
  }
});
