/**
 * Log chunks: a chunk of lines ingested in one request is stored as one row, and every reader
 * (ListEvents, SubscribeEvents, transcripts) still sees one event per line, with its own
 * sequence, key, time, level, type and metadata, in order with the run's other events.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { createPostgresDatabase } from "@packrun/db";
import {
  type Event,
  EventLevel,
  type IngestEventsRequest,
  type IngestEventsResponse,
  type LogChunk,
  LogChunkSchema,
} from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { beforeAll, describe, test } from "vitest";
import {
  storedFields as fields,
  ingestAll,
  Pushable,
  type TestEvidence,
  testEvent,
  useEvidence,
} from "./test-helpers.ts";
import { transcriptChunks } from "./transcript-store.ts";

let evidence: TestEvidence;
let databaseUrl: string;

/** A chunk of `lines` log lines of step `stepId` (keys `<key>-<i>`, stderr every third line). */
function testChunk(runId: string, key: string, lines: number, stepId = "build"): LogChunk {
  const time = new Date("2026-01-02T03:04:05.678Z");
  return create(LogChunkSchema, {
    tenant: "acme",
    runId,
    stepId,
    idempotencyKey: key,
    lines: Array.from({ length: lines }, (_, i) => ({
      idempotencyKey: `${key}-${i}`,
      time: timestampFromDate(new Date(time.getTime() + i)),
      level: i % 3 === 2 ? EventLevel.WARN : EventLevel.INFO,
      type: i % 3 === 2 ? "log.stderr" : "log.stdout",
      message: `${key} line ${i} ünïcode \u0000 end`,
      metadata: { line: i, attempt: 1 },
    })),
  });
}

/** Sends requests (events or chunks) on one stream and returns the acknowledgements. */
async function ingest(requests: readonly Partial<IngestEventsRequest>[]) {
  const stream = new Pushable<IngestEventsRequest>();
  for (const request of requests) stream.push(request as IngestEventsRequest);
  stream.end();
  const acks: IngestEventsResponse[] = [];
  for await (const ack of evidence.client.ingestEvents(stream)) acks.push(ack);
  return acks;
}

async function listAll(
  runId: string,
  options: { afterSequence?: number; pageSize?: number; stepId?: string; minLevel?: EventLevel },
): Promise<Event[]> {
  const events: Event[] = [];
  let afterSequence = BigInt(options.afterSequence ?? 0);
  for (;;) {
    const page = await evidence.client.listEvents({
      tenant: "acme",
      runId,
      afterSequence,
      pageSize: options.pageSize ?? 1000,
      stepId: options.stepId ?? "",
      minLevel: options.minLevel ?? EventLevel.UNSPECIFIED,
    });
    events.push(...page.events);
    if (page.nextAfterSequence === 0n) return events;
    afterSequence = page.nextAfterSequence;
  }
}

const sequences = (events: readonly Event[]) => events.map((event) => Number(event.sequence));
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("log chunks", () => {
  const fixture = useEvidence("evidence_chunks");
  beforeAll(() => {
    evidence = fixture.evidence;
    databaseUrl = fixture.database.url;
  });

  test("a chunk's lines take consecutive sequences between the run's events, one row per chunk", async () => {
    const runId = "run-chunks";
    const acks = await ingest([
      { event: testEvent(runId, "started", { type: "step.started", message: "go" }) },
      { chunk: testChunk(runId, "c1", 5) },
      { event: testEvent(runId, "between", { type: "step.note" }) },
      { chunk: testChunk(runId, "c2", 3, "test") },
    ]);
    assert.deepEqual(
      acks.map((ack) => [ack.idempotencyKey, Number(ack.sequence), Number(ack.lastSequence)]),
      [
        ["started", 1, 1],
        ["c1", 2, 6],
        ["between", 7, 7],
        ["c2", 8, 10],
      ],
    );
    const events = await listAll(runId, {});
    assert.deepEqual(sequences(events), range(1, 10));
    assert.deepEqual(
      events.map((event) => event.idempotencyKey),
      ["started", "c1-0", "c1-1", "c1-2", "c1-3", "c1-4", "between", "c2-0", "c2-1", "c2-2"],
    );
    const line = events[3] as Event;
    assert.equal(line.message, "c1 line 2 ünïcode \uFFFD end");
    assert.equal(line.type, "log.stderr");
    assert.equal(line.level, EventLevel.WARN);
    assert.equal(line.stepId, "build");
    assert.deepEqual(line.metadata, { line: 2, attempt: 1 });
    assert.equal(line.time?.nanos, 680_000_000);
    const database = createPostgresDatabase({ url: databaseUrl });
    try {
      const stored = await database.query<{ events: number; chunks: number }>(
        `SELECT (SELECT count(*)::int FROM evidence.events WHERE run_id = $1) AS events,
                (SELECT count(*)::int FROM evidence.log_chunks WHERE run_id = $1) AS chunks`,
        [runId],
      );
      assert.deepEqual(stored.rows[0], { events: 2, chunks: 2 });
    } finally {
      await database.close();
    }
  });

  test("reading from the middle of a chunk yields the following lines only, page by page", async () => {
    const runId = "run-middle";
    await ingest([
      { chunk: testChunk(runId, "a", 400) },
      { event: testEvent(runId, "mark", { type: "step.note" }) },
      { chunk: testChunk(runId, "b", 400) },
    ]);
    for (const after of [1, 200, 399, 400, 401, 402, 650, 790, 800]) {
      for (const pageSize of [1, 7, 1000]) {
        if (pageSize === 1 && after < 780) continue;
        const events = await listAll(runId, { afterSequence: after, pageSize });
        assert.deepEqual(sequences(events), range(after + 1, 801), `after ${after} by ${pageSize}`);
      }
    }
    // Filters apply line by line.
    const stderr = await listAll(runId, { minLevel: EventLevel.WARN, afterSequence: 100 });
    assert.ok(stderr.length > 200 && stderr.every((event) => event.type === "log.stderr"));
    assert.deepEqual(
      sequences(stderr),
      [...sequences(stderr)].sort((x, y) => x - y),
    );
  });

  test("a step filter keeps that step's lines and the run's terminal event", async () => {
    const runId = "run-steps";
    await ingest([
      { chunk: testChunk(runId, "one", 4, "one") },
      { chunk: testChunk(runId, "two", 4, "two") },
      { event: testEvent(runId, "end", { type: "run.succeeded", stepId: "" }) },
    ]);
    const two = await listAll(runId, { stepId: "two", afterSequence: 5 });
    assert.deepEqual(sequences(two), [6, 7, 8]);
    const followed: number[] = [];
    for await (const response of evidence.client.subscribeEvents({
      tenant: "acme",
      runId,
      afterSequence: 6n,
      stepId: "two",
    }))
      followed.push(Number(response.event?.sequence));
    assert.deepEqual(followed, [7, 8, 9]);
  });

  test("a resent chunk is acknowledged with its original sequences and stored once", async () => {
    const runId = "run-resend";
    const first = await ingest([{ chunk: testChunk(runId, "x", 10) }]);
    const again = await ingest([
      { chunk: testChunk(runId, "x", 10) },
      { chunk: testChunk(runId, "y", 2) },
    ]);
    assert.deepEqual(
      [...first, ...again].map((ack) => [
        Number(ack.sequence),
        Number(ack.lastSequence),
        ack.duplicate,
      ]),
      [
        [1, 10, false],
        [1, 10, true],
        [11, 12, false],
      ],
    );
    assert.deepEqual(sequences(await listAll(runId, {})), range(1, 12));
  });

  test("a live subscriber that resumes in a chunk sees every later line once, in order, to the end", async () => {
    const runId = "run-follow";
    await ingest([{ chunk: testChunk(runId, "p", 50) }]);
    const received: number[] = [];
    const following = (async () => {
      for await (const response of evidence.client.subscribeEvents({
        tenant: "acme",
        runId,
        afterSequence: 20n,
        stepId: "",
      }))
        received.push(Number(response.event?.sequence));
    })();
    for (let i = 0; i < 10; i++) await ingest([{ chunk: testChunk(runId, `q${i}`, 30) }]);
    await ingestAll(evidence.client, [testEvent(runId, "done", { type: "run.failed" })]);
    await following;
    assert.deepEqual(received, range(21, 351));
  });

  test("a transcript of chunked lines is byte for byte the transcript of the same lines sent one by one", async () => {
    const chunk = testChunk("run-chunked", "t", 25);
    await ingest([
      { event: testEvent("run-chunked", "s", { type: "step.started", message: "go" }) },
      { chunk },
    ]);
    await ingest([
      { event: testEvent("run-single", "s", { type: "step.started", message: "go" }) },
      ...chunk.lines.map((line) => ({
        event: { ...line, tenant: "acme", runId: "run-single", stepId: chunk.stepId },
      })),
    ]);
    const database = createPostgresDatabase({ url: databaseUrl });
    try {
      const transcript = async (runId: string) => {
        const parts: Buffer[] = [];
        for await (const part of transcriptChunks(database, runId, 26)) parts.push(part);
        return Buffer.concat(parts).toString("utf8");
      };
      const chunked = await transcript("run-chunked");
      const lines = await transcript("run-single");
      assert.equal(chunked.split("\n").length, 27);
      // The step.started events differ in their time; every log line must be identical.
      const logLines = (text: string) =>
        text
          .split("\n")
          .slice(1)
          .map((line) => line.replaceAll("run-single", "run-chunked"));
      assert.deepEqual(logLines(chunked), logLines(lines));
      const single = await listAll("run-single", {});
      const chunkedEvents = await listAll("run-chunked", {});
      assert.deepEqual(chunkedEvents.slice(1).map(fields), single.slice(1).map(fields));
    } finally {
      await database.close();
    }
  });

  test("invalid chunks are refused naming what is wrong, after the requests before them", async () => {
    const runId = "run-invalid";
    const refused = async (chunk: Partial<IngestEventsRequest>, pattern: RegExp) => {
      const acks: IngestEventsResponse[] = [];
      await assert.rejects(
        (async () => {
          const stream = new Pushable<IngestEventsRequest>();
          stream.push({
            chunk: testChunk(runId, `ok-${pattern.source}`, 1),
          } as IngestEventsRequest);
          stream.push(chunk as IngestEventsRequest);
          stream.end();
          for await (const ack of evidence.client.ingestEvents(stream)) acks.push(ack);
        })(),
        (error: unknown) => {
          const connectError = ConnectError.from(error);
          assert.equal(connectError.code, Code.InvalidArgument);
          assert.equal(connectError.metadata.get(errorCodeHeader), "REQUEST_INVALID");
          assert.match(connectError.rawMessage, pattern);
          return true;
        },
      );
      assert.equal(acks.length, 1);
    };
    await refused({ chunk: testChunk(runId, "empty", 0) }, /chunk\.lines must hold 1-10000/);
    const wrongType = testChunk(runId, "type", 3);
    (wrongType.lines[1] as Event).type = "run.succeeded";
    await refused({ chunk: wrongType }, /chunk\.lines\[1\]: event\.type must be log\.\*/);
    const tooLong = testChunk(runId, "long", 2);
    (tooLong.lines[1] as Event).message = "x".repeat(300 * 1024);
    await refused({ chunk: tooLong }, /chunk\.lines\[1\]: event\.message exceeds/);
    await refused(
      { chunk: testChunk(runId, "both", 1), event: testEvent(runId, "both-event") },
      /either event or chunk/,
    );
  });
});
