/**
 * Event batches: the events an executor committed together arrive in one request and are
 * stored as one row, and every reader (ListEvents, step filters, transcripts) still sees one
 * event per sequence with its own key, step, time, level, type and metadata; each event keeps
 * its key, so a resent batch, or an event of it sent again, finds its original.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { createPostgresDatabase, type Database } from "@packrun/db";
import {
  type Event,
  type EventBatch,
  EventBatchSchema,
  EventLevel,
  type IngestEventsRequest,
  type IngestEventsResponse,
} from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { afterAll, beforeAll, describe, test } from "vitest";
import {
  storedFields as fields,
  Pushable,
  type TestEvidence,
  testEvent,
  useEvidence,
} from "./test-helpers.ts";
import { transcriptChunks } from "./transcript-store.ts";

let evidence: TestEvidence;
let database: Database;

/** A run's events as an executor writes them: steps a, b, then the run's end (keys `<key>-<i>`). */
function runEvents(runId: string, key: string, terminal = true): Event[] {
  const time = new Date("2026-01-02T03:04:05.678Z");
  const types = ["step.running", "step.succeeded", "step.running", "step.succeeded"];
  const events = types.map((type, i) =>
    testEvent(runId, `${key}-${i}`, {
      type,
      stepId: i < 2 ? "a" : "b",
      level: i === 1 ? EventLevel.WARN : EventLevel.INFO,
      message: `${type} ünïcode \u0000 end`,
      metadata: { attempt: 1, i },
    }),
  );
  if (terminal) events.push(testEvent(runId, `${key}-end`, { type: "run.succeeded", stepId: "" }));
  for (const [i, event] of events.entries())
    event.time = timestampFromDate(new Date(time.getTime() + i));
  return events;
}

function batchOf(runId: string, key: string, events: Event[]): EventBatch {
  return create(EventBatchSchema, { tenant: "acme", runId, idempotencyKey: key, events });
}

/** Sends requests on one stream and returns the acknowledgements. */
async function ingest(requests: readonly Partial<IngestEventsRequest>[]) {
  const stream = new Pushable<IngestEventsRequest>();
  for (const request of requests) stream.push(request as IngestEventsRequest);
  stream.end();
  const acks: IngestEventsResponse[] = [];
  for await (const ack of evidence.client.ingestEvents(stream)) acks.push(ack);
  return acks;
}

const acked = (acks: readonly IngestEventsResponse[]) =>
  acks.map((ack) => [
    ack.idempotencyKey,
    Number(ack.sequence),
    Number(ack.lastSequence),
    ack.duplicate,
  ]);

async function list(runId: string, stepId = ""): Promise<Event[]> {
  const page = await evidence.client.listEvents({ tenant: "acme", runId, pageSize: 1000, stepId });
  return page.events;
}

const rowsOf = async (runId: string) =>
  (
    await database.query<{ events: number; chunks: number }>(
      `SELECT (SELECT count(*)::int FROM evidence.events WHERE run_id = $1) AS events,
              (SELECT count(*)::int FROM evidence.log_chunks WHERE run_id = $1) AS chunks`,
      [runId],
    )
  ).rows[0];

async function refusedWith(request: Partial<IngestEventsRequest>, code: string, pattern: RegExp) {
  await assert.rejects(ingest([request]), (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.metadata.get(errorCodeHeader), code);
    if (code === "REQUEST_INVALID") assert.equal(connectError.code, Code.InvalidArgument);
    assert.match(connectError.rawMessage, pattern);
    return true;
  });
}

describe("event batches", () => {
  const fixture = useEvidence("evidence_batches");
  beforeAll(() => {
    evidence = fixture.evidence;
    database = createPostgresDatabase({ url: fixture.database.url });
  });
  afterAll(() => database.close());

  test("a batch is one row whose events read, filter and transcribe exactly as events sent one by one", async () => {
    const events = runEvents("run-batched", "k");
    const acks = await ingest([
      { event: testEvent("run-batched", "first", { type: "run.running", stepId: "" }) },
      { batch: batchOf("run-batched", "tx-1", events.slice(0, 2)) },
      { batch: batchOf("run-batched", "tx-2", events.slice(2)) },
    ]);
    assert.deepEqual(acked(acks), [
      ["first", 1, 1, false],
      ["tx-1", 2, 3, false],
      ["tx-2", 4, 6, false],
    ]);
    assert.deepEqual(await rowsOf("run-batched"), { events: 1, chunks: 2 });
    await ingest([
      { event: testEvent("run-single", "first", { type: "run.running", stepId: "" }) },
      ...runEvents("run-single", "k").map((event) => ({ event })),
    ]);
    const batched = await list("run-batched");
    const single = await list("run-single");
    assert.deepEqual(batched.map(fields).slice(1), single.map(fields).slice(1));
    assert.deepEqual(
      batched.map((event) => event.stepId),
      ["", "a", "a", "b", "b", ""],
    );
    // A step filter finds the step's events inside batches, and the run's terminal event.
    assert.deepEqual(
      (await list("run-batched", "b")).map((event) => Number(event.sequence)),
      [4, 5],
    );
    const transcript = async (runId: string) => {
      const parts: Buffer[] = [];
      for await (const part of transcriptChunks(database, runId, 6)) parts.push(part);
      return Buffer.concat(parts).toString("utf8");
    };
    const without = (text: string) => text.split("\n").slice(1).join("\n");
    assert.equal(
      without(await transcript("run-batched")),
      without(await transcript("run-single")).replaceAll("run-single", "run-batched"),
    );
  });

  test("a resent batch, or its events sent again, find their originals; new events stay gapless", async () => {
    const runId = "run-resent";
    const events = runEvents(runId, "r", false);
    await ingest([{ batch: batchOf(runId, "tx-1", events.slice(0, 3)) }]);
    const acks = await ingest([
      { batch: batchOf(runId, "tx-1", events.slice(0, 3)) },
      { event: events[1] as Event },
      // Another transaction repeating an event already stored: only the new one is appended.
      { batch: batchOf(runId, "tx-2", [events[2] as Event, events[3] as Event]) },
      { batch: batchOf(runId, "tx-3", [events[0] as Event, events[1] as Event]) },
    ]);
    assert.deepEqual(acked(acks), [
      ["tx-1", 1, 3, true],
      ["r-1", 2, 2, true],
      ["tx-2", 4, 4, false],
      ["tx-3", 1, 2, true],
    ]);
    const stored = await list(runId);
    assert.deepEqual(
      stored.map((event) => [Number(event.sequence), event.idempotencyKey]),
      [
        [1, "r-0"],
        [2, "r-1"],
        [3, "r-2"],
        [4, "r-3"],
      ],
    );
    assert.deepEqual(await rowsOf(runId), { events: 0, chunks: 2 });
  });

  test("a batch's terminal event ends the run; invalid batches are refused naming what is wrong", async () => {
    const runId = "run-ended";
    await ingest([{ batch: batchOf(runId, "tx-1", runEvents(runId, "e")) }]);
    await refusedWith(
      { event: testEvent(runId, "late", { type: "step.note" }) },
      "RUN_FINISHED",
      /ended with event 5/,
    );
    const other = "run-invalid";
    const endFirst = runEvents(other, "x").reverse();
    await refusedWith(
      { batch: batchOf(other, "tx-end", endFirst) },
      "REQUEST_INVALID",
      /batch\.events\[0\]: run\.succeeded must be the batch's last event/,
    );
    await refusedWith(
      { batch: batchOf(other, "tx-log", [testEvent(other, "log-1")]) },
      "REQUEST_INVALID",
      /batch\.events\[0\]: event\.type log\.\* travels in chunks/,
    );
    await refusedWith(
      { batch: batchOf(other, "tx-empty", []) },
      "REQUEST_INVALID",
      /batch\.events must hold 1-10000 events/,
    );
    await refusedWith(
      { batch: batchOf(other, "tx-both", runEvents(other, "y")), event: testEvent(other, "z") },
      "REQUEST_INVALID",
      /either event or chunk or batch/,
    );
    assert.deepEqual(await rowsOf(other), { events: 0, chunks: 0 });
  });
});
