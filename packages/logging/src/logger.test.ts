import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { context, trace } from "@opentelemetry/api";
import { recordSpans } from "@packrun/telemetry";
import { test } from "vitest";
import { createLogger, runLogger } from "./logger.ts";

function capture() {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line));
  });
  return { stream, lines };
}

test("lines carry service, run and step ids", async () => {
  const { stream, lines } = capture();
  const log = runLogger(createLogger({ service: "executor", destination: stream }), {
    runId: "run-1",
    stepId: "build",
  });
  log.info({ attempt: 2 }, "step started");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.service, "executor");
  assert.equal(lines[0]?.runId, "run-1");
  assert.equal(lines[0]?.stepId, "build");
  assert.equal(lines[0]?.level, "info");
  assert.equal(lines[0]?.msg, "step started");
});

test("secret-named fields are censored at any of the first three levels", async () => {
  const { stream, lines } = capture();
  const log = createLogger({ service: "gateway", destination: stream });
  log.info({ token: "t0p", request: { authorization: "Bearer x", body: { password: "p" } } }, "x");
  await new Promise((resolve) => setImmediate(resolve));
  const text = JSON.stringify(lines);
  assert.ok(!text.includes("t0p"));
  assert.ok(!text.includes("Bearer x"));
  assert.ok(!text.includes('"p"'));
  assert.match(text, /\[redacted\]/);
});

test("lines written inside a span carry its trace and span ids; others carry none", async () => {
  recordSpans();
  const { stream, lines } = capture();
  const log = createLogger({ service: "planner", destination: stream });
  const tracer = trace.getTracer("test");
  const span = tracer.startSpan("work");
  context.with(trace.setSpan(context.active(), span), () => log.info("inside"));
  span.end();
  log.info("outside");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(lines[0]?.trace_id, span.spanContext().traceId);
  assert.equal(lines[0]?.span_id, span.spanContext().spanId);
  assert.match(String(lines[0]?.trace_id), /^[0-9a-f]{32}$/);
  assert.equal(lines[1]?.trace_id, undefined);
  assert.equal(lines[1]?.span_id, undefined);
});
