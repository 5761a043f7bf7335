import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EventLevel,
  type IngestEventsRequest,
  IngestEventsRequestSchema,
  type IngestEventsResponse,
} from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { beforeAll, describe, test } from "vitest";
import {
  ingestAll,
  Pushable,
  startTestEvidence,
  type TestEvidence,
  testEvent,
  useEvidence,
} from "./test-helpers.ts";

let evidence: TestEvidence;
let db: { url: string };

async function allSequences(runId: string, tenant = "acme"): Promise<number[]> {
  const sequences: number[] = [];
  let afterSequence = 0n;
  for (;;) {
    const page = await evidence.client.listEvents({ tenant, runId, afterSequence, pageSize: 1000 });
    sequences.push(...page.events.map((event) => Number(event.sequence)));
    if (page.nextAfterSequence === 0n) return sequences;
    afterSequence = page.nextAfterSequence;
  }
}

const range = (n: number) => Array.from({ length: n }, (_, index) => index + 1);

function rejectsWith(code: Code, packrunCode: string) {
  return (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, code, connectError.message);
    assert.equal(connectError.metadata.get(errorCodeHeader), packrunCode);
    return true;
  };
}

describe("event log", () => {
  const fixture = useEvidence("evidence_log");
  beforeAll(() => {
    evidence = fixture.evidence;
    db = fixture.database;
  });

  test("concurrent writers to one run get sequences exactly 1..N, in each writer's order", async () => {
    const runId = "run-concurrent";
    const writers = 8;
    const perWriter = 1500;
    const started = performance.now();
    const results = await Promise.all(
      range(writers).map((writer) =>
        ingestAll(
          evidence.client,
          range(perWriter).map((i) =>
            testEvent(runId, `w${writer}-${i}`, { stepId: `step-${writer}` }),
          ),
        ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const total = writers * perWriter;
    console.log(
      `# ingest: ${total} events from ${writers} concurrent streams into one run in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} events/s`,
    );
    for (const acks of results) {
      assert.equal(acks.length, perWriter);
      const sequences = acks.map((ack) => Number(ack.sequence));
      assert.deepEqual(
        sequences,
        [...sequences].sort((a, b) => a - b),
        "a writer's events keep its order",
      );
      assert.ok(acks.every((ack) => !ack.duplicate));
    }
    const acked = results
      .flat()
      .map((ack) => Number(ack.sequence))
      .sort((a, b) => a - b);
    assert.deepEqual(acked, range(total));
    assert.deepEqual(await allSequences(runId), range(total));
  });

  test("a resent event returns its original sequence with duplicate=true and adds no row", async () => {
    const runId = "run-dedup";
    const first = await ingestAll(
      evidence.client,
      range(5).map((i) => testEvent(runId, `k${i}`)),
    );
    const again = await ingestAll(evidence.client, [
      testEvent(runId, "k2", { message: "different text, same key" }),
      testEvent(runId, "k6"),
      testEvent(runId, "k6"),
      testEvent(runId, "k4"),
    ]);
    assert.deepEqual(
      again.map((ack) => [ack.idempotencyKey, Number(ack.sequence), ack.duplicate]),
      [
        ["k2", 2, true],
        ["k6", 6, false],
        ["k6", 6, true],
        ["k4", 4, true],
      ],
    );
    assert.deepEqual(
      first.map((ack) => Number(ack.sequence)),
      range(5),
    );
    assert.deepEqual(await allSequences(runId), range(6));
    const stored = await evidence.client.listEvents({
      tenant: "acme",
      runId,
      afterSequence: 1n,
      pageSize: 1,
    });
    assert.equal(stored.events[0]?.message, "line k2");
  });

  test("the same events sent on concurrent streams are stored once, and every stream gets their original sequences", async () => {
    const runs = ["run-race-a", "run-race-b", "run-race-c"];
    const rounds = 40;
    const streams = 6;
    for (let round = 0; round < rounds; round++) {
      // Each round: a few new events per run, interleaved across runs, sent by every stream.
      const events = range(3).flatMap((i) =>
        runs.map((runId) => testEvent(runId, `r${round}-${i}`)),
      );
      const results = await Promise.all(
        range(streams).map(() => ingestAll(evidence.client, events)),
      );
      const first = results[0]?.map((ack) => [ack.idempotencyKey, Number(ack.sequence)]);
      for (const acks of results) {
        assert.deepEqual(
          acks.map((ack) => [ack.idempotencyKey, Number(ack.sequence)]),
          first,
        );
      }
      for (const [index] of events.entries()) {
        const stored = results.filter((acks) => acks[index]?.duplicate === false).length;
        assert.equal(stored, 1, `event ${index} of round ${round} is stored exactly once`);
      }
    }
    for (const runId of runs) assert.deepEqual(await allSequences(runId), range(rounds * 3));
  });

  test("an evidence restart mid-ingest loses nothing: resending the unacknowledged events completes the log", async () => {
    const runId = "run-restart";
    const total = 3000;
    const events = range(total).map((i) => testEvent(runId, `r${i}`));
    const first = await startTestEvidence(db.url, { artifactRoot: evidence.artifactRoot });
    // Keep a window of events in flight, like a producer waiting for acknowledgements.
    const window = 200;
    const requests = new Pushable<IngestEventsRequest>();
    let sent = 0;
    const send = (count: number) => {
      for (const event of events.slice(sent, sent + count)) {
        requests.push(create(IngestEventsRequestSchema, { event }));
      }
      sent = Math.min(total, sent + count);
    };
    send(window);
    const acked = new Set<string>();
    const crash = new AbortController();
    let closing: Promise<void> | undefined;
    try {
      for await (const ack of first.client.ingestEvents(requests, { signal: crash.signal })) {
        acked.add(ack.idempotencyKey);
        send(1);
        if (acked.size === 700) {
          // The server goes away with events in flight: the stream breaks on both sides.
          closing = first.server.close();
          crash.abort();
        }
      }
    } catch {
      // The broken stream.
    }
    await closing;
    await first.database.close();
    assert.ok(acked.size >= 700 && acked.size < total, `acked ${acked.size} before the restart`);
    const second = await startTestEvidence(db.url, { artifactRoot: evidence.artifactRoot });
    try {
      const resent = events.filter((event) => !acked.has(event.idempotencyKey));
      const acks = await ingestAll(second.client, resent);
      assert.equal(acks.length, resent.length);
      const duplicates = acks.filter((ack) => ack.duplicate).length;
      console.log(
        `# restart: ${acked.size} acked before the restart, ${duplicates} of ${resent.length} resent were already stored`,
      );
      assert.deepEqual(await allSequences(runId), range(total));
      const keys = new Set<string>();
      let afterSequence = 0n;
      for (;;) {
        const page = await second.client.listEvents({
          tenant: "acme",
          runId,
          afterSequence,
          pageSize: 1000,
        });
        for (const event of page.events) keys.add(event.idempotencyKey);
        if (page.nextAfterSequence === 0n) break;
        afterSequence = page.nextAfterSequence;
      }
      assert.equal(keys.size, total, "every event exactly once");
    } finally {
      await second.close();
    }
  });

  test("ListEvents pages by after_sequence and filters by step and minimum level", async () => {
    const runId = "run-list";
    await ingestAll(evidence.client, [
      testEvent(runId, "a", { type: "run.started", stepId: "" }),
      testEvent(runId, "b", { stepId: "build", level: EventLevel.DEBUG }),
      testEvent(runId, "c", { stepId: "build", level: EventLevel.WARN }),
      testEvent(runId, "d", { stepId: "test", level: EventLevel.ERROR }),
      testEvent(runId, "e", { stepId: "build", level: EventLevel.ERROR }),
    ]);
    const page1 = await evidence.client.listEvents({ tenant: "acme", runId, pageSize: 2 });
    assert.deepEqual(
      page1.events.map((event) => event.idempotencyKey),
      ["a", "b"],
    );
    assert.equal(page1.nextAfterSequence, 2n);
    const page3 = await evidence.client.listEvents({
      tenant: "acme",
      runId,
      pageSize: 2,
      afterSequence: 4n,
    });
    assert.deepEqual(
      page3.events.map((event) => event.idempotencyKey),
      ["e"],
    );
    assert.equal(page3.nextAfterSequence, 0n);
    const build = await evidence.client.listEvents({
      tenant: "acme",
      runId,
      stepId: "build",
      minLevel: EventLevel.WARN,
    });
    assert.deepEqual(
      build.events.map((event) => [event.idempotencyKey, event.level]),
      [
        ["c", EventLevel.WARN],
        ["e", EventLevel.ERROR],
      ],
    );
    const [event] = page1.events;
    assert.equal(event?.tenant, "acme");
    assert.equal(event?.type, "run.started");
    assert.deepEqual(event?.metadata, { key: "a" });
    assert.ok(event?.time !== undefined);
  });

  test("another tenant's run is not found, for reads and writes alike", async () => {
    const runId = "run-tenant";
    await ingestAll(evidence.client, [testEvent(runId, "x")]);
    await assert.rejects(
      evidence.client.listEvents({ tenant: "umbrella", runId }),
      rejectsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
    await assert.rejects(
      ingestAll(evidence.client, [testEvent(runId, "y", { tenant: "umbrella" })]),
      rejectsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
    assert.deepEqual(await allSequences(runId), [1]);
  });

  test("invalid events end the stream with a clear error after the valid ones before them are acknowledged", async () => {
    const runId = "run-invalid";
    const requests = new Pushable<IngestEventsRequest>();
    requests.push(create(IngestEventsRequestSchema, { event: testEvent(runId, "ok") }));
    requests.push(
      create(IngestEventsRequestSchema, { event: testEvent(runId, "bad", { type: "deploy.now" }) }),
    );
    requests.end();
    const acks: IngestEventsResponse[] = [];
    await assert.rejects(
      (async () => {
        for await (const ack of evidence.client.ingestEvents(requests)) acks.push(ack);
      })(),
      (error: unknown) => {
        const connectError = ConnectError.from(error);
        assert.equal(connectError.code, Code.InvalidArgument);
        assert.match(
          connectError.rawMessage,
          /run\.\*, step\.\*, log\.\*, artifact\.\* or gate\.\*/,
        );
        return true;
      },
    );
    assert.deepEqual(
      acks.map((ack) => ack.idempotencyKey),
      ["ok"],
    );
    const noKey = testEvent(runId, "z");
    noKey.idempotencyKey = "";
    await assert.rejects(
      ingestAll(evidence.client, [noKey]),
      rejectsWith(Code.InvalidArgument, "REQUEST_INVALID"),
    );
  });

  test("nothing may follow a terminal event; NUL characters are stored as U+FFFD", async () => {
    const runId = "run-terminal";
    const acks = await ingestAll(evidence.client, [
      testEvent(runId, "1", { message: "a\u0000b", metadata: { "k\u0000": "v\u0000" } }),
      testEvent(runId, "2", { type: "run.succeeded", stepId: "" }),
    ]);
    assert.deepEqual(
      acks.map((ack) => Number(ack.sequence)),
      [1, 2],
    );
    const resent = await ingestAll(evidence.client, [
      testEvent(runId, "2", { type: "run.succeeded", stepId: "" }),
    ]);
    assert.equal(resent[0]?.duplicate, true, "resending the terminal event itself is fine");
    await assert.rejects(
      ingestAll(evidence.client, [testEvent(runId, "3")]),
      rejectsWith(Code.FailedPrecondition, "RUN_FINISHED"),
    );
    const { events } = await evidence.client.listEvents({ tenant: "acme", runId });
    assert.equal(events.length, 2);
    assert.equal(events[0]?.message, "a\uFFFDb");
    assert.deepEqual(events[0]?.metadata, { "k\uFFFD": "v\uFFFD" });
  });
});
