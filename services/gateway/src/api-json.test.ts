import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { EventLevel, EventSchema } from "@packrun/proto/evidence/v1";
import { Value } from "typebox/value";
import { test } from "vitest";
import { runEventJson } from "./api-json.ts";
import { RunEventSchema } from "./api-schemas.ts";

const event = (fields: MessageInitShape<typeof EventSchema>) =>
  create(EventSchema, {
    tenant: "acme",
    runId: "r1",
    sequence: 7n,
    time: timestampFromDate(new Date("2026-12-06T09:00:00.123Z")),
    level: EventLevel.INFO,
    type: "log.stdout",
    ...fields,
  });

test("an empty log line keeps its (empty) message, as the RunEvent schema requires", () => {
  const json = runEventJson(event({ stepId: "build", message: "" }));
  assert.deepEqual(json, {
    sequence: 7,
    time: "2026-12-06T09:00:00.123Z",
    level: "info",
    type: "log.stdout",
    stepId: "build",
    message: "",
  });
  assert.ok(Value.Check(RunEventSchema, json));
});

test("a run-level event has no stepId, and empty metadata is left out; key order is stable", () => {
  const json = runEventJson(event({ type: "run.succeeded", message: "done", metadata: {} }));
  assert.deepEqual(Object.keys(json), ["sequence", "time", "level", "type", "message"]);
  const withMetadata = runEventJson(event({ stepId: "a", message: "m", metadata: { line: 3 } }));
  assert.deepEqual(Object.keys(withMetadata), [
    "sequence",
    "time",
    "level",
    "type",
    "stepId",
    "message",
    "metadata",
  ]);
});

test("consecutive events with different times each get their own time (the last one is reused only when equal)", () => {
  const at = (iso: string) => runEventJson(event({ time: timestampFromDate(new Date(iso)) })).time;
  assert.equal(at("2026-12-06T09:00:00.001Z"), "2026-12-06T09:00:00.001Z");
  assert.equal(at("2026-12-06T09:00:00.001Z"), "2026-12-06T09:00:00.001Z");
  assert.equal(at("2026-12-06T09:00:00.002Z"), "2026-12-06T09:00:00.002Z");
  assert.equal(at("2027-01-01T00:00:00.001Z"), "2027-01-01T00:00:00.001Z");
});
