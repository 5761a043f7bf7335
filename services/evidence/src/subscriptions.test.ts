import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EvidenceService, type SubscribeEventsResponse } from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import type { TestDatabase } from "@packrun/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, test } from "vitest";
import { resumeAfterTrailer } from "./subscribe-events.ts";
import {
  ingestAll,
  startTestEvidence,
  type TestEvidence,
  testEvent,
  useEvidence,
} from "./test-helpers.ts";

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, index) => from + index);

async function collect(stream: AsyncIterable<SubscribeEventsResponse>): Promise<number[]> {
  const sequences: number[] = [];
  for await (const response of stream) sequences.push(Number(response.event?.sequence));
  return sequences;
}

/** Ingests `count` log events in chunks on several streams, then the terminal event. */
async function produce(
  evidence: TestEvidence,
  runId: string,
  from: number,
  count: number,
  payloadBytes = 100,
) {
  const chunk = 250;
  for (let start = from; start < from + count; start += chunk * 2) {
    const keys = (offset: number) =>
      range(start + offset, Math.min(start + offset + chunk - 1, from + count - 1));
    await Promise.all(
      [0, chunk].map((offset) =>
        ingestAll(
          evidence.client,
          keys(offset).map((i) =>
            testEvent(runId, `e${i}`, {
              stepId: i % 2 === 0 ? "even" : "odd",
              message: "x".repeat(payloadBytes),
            }),
          ),
        ),
      ),
    );
  }
}

describe("live subscriptions", () => {
  const fixture = useEvidence("evidence_subscribe");
  let db: TestDatabase;
  let ingester: TestEvidence;
  let follower: TestEvidence;
  beforeAll(async () => {
    db = fixture.database;
    ingester = fixture.evidence;
    // A second replica on the same database: subscriptions there hear about events via NOTIFY.
    follower = await startTestEvidence(db.url, { limits: { subscriberPollMs: 60_000 } });
  });
  afterAll(() => follower.close());

  test("replay then follow, on another replica, while events are still being ingested: no gap, reorder or duplicate", async () => {
    const runId = "run-follow";
    await ingestAll(
      ingester.client,
      range(1, 300).map((i) => testEvent(runId, `e${i}`)),
    );
    const starts = [0, 0, 150, 299, 300];
    const subscribers = starts.map((afterSequence) =>
      collect(
        follower.client.subscribeEvents({
          tenant: "acme",
          runId,
          afterSequence: BigInt(afterSequence),
        }),
      ),
    );
    await produce(ingester, runId, 301, 2700);
    await ingestAll(ingester.client, [
      testEvent(runId, "done", { type: "run.succeeded", stepId: "" }),
    ]);
    const results = await Promise.all(subscribers);
    results.forEach((sequences, index) => {
      assert.deepEqual(
        sequences,
        range((starts[index] as number) + 1, 3001),
        `subscriber after ${starts[index]}`,
      );
    });
    // A finished run replays and ends at once.
    assert.deepEqual(
      await collect(
        follower.client.subscribeEvents({ tenant: "acme", runId, afterSequence: 2990n }),
      ),
      range(2991, 3001),
    );
  });

  test("a step filter follows that step and still ends with the run's terminal event", async () => {
    const runId = "run-step";
    // Nothing ingested yet: the run is unknown.
    await assert.rejects(
      collect(follower.client.subscribeEvents({ tenant: "acme", runId, stepId: "odd" })),
      (error: unknown) => ConnectError.from(error).code === Code.NotFound,
    );
    await ingestAll(ingester.client, [testEvent(runId, "e0", { type: "run.started", stepId: "" })]);
    const odd = collect(follower.client.subscribeEvents({ tenant: "acme", runId, stepId: "odd" }));
    await produce(ingester, runId, 1, 40);
    await ingestAll(ingester.client, [testEvent(runId, "end", { type: "run.failed", stepId: "" })]);
    const sequences = await odd;
    assert.equal(sequences.length, 21);
    const { events } = await ingester.client.listEvents({ tenant: "acme", runId, pageSize: 1000 });
    const expected = events.filter(
      (event) => event.stepId === "odd" || event.type === "run.failed",
    );
    assert.deepEqual(
      sequences,
      expected.map((event) => Number(event.sequence)),
    );
  });

  test("another tenant cannot subscribe", async () => {
    await ingestAll(ingester.client, [testEvent("run-private", "a")]);
    await assert.rejects(
      collect(follower.client.subscribeEvents({ tenant: "umbrella", runId: "run-private" })),
      (error: unknown) => {
        const connectError = ConnectError.from(error);
        assert.equal(connectError.code, Code.NotFound);
        assert.equal(connectError.metadata.get(errorCodeHeader), "RUN_NOT_FOUND");
        return true;
      },
    );
  });

  test("losing the LISTEN connection loses no event: it reconnects and subscribers re-read", async () => {
    const runId = "run-reconnect";
    await ingestAll(ingester.client, [testEvent(runId, "first")]);
    const subscription = collect(follower.client.subscribeEvents({ tenant: "acme", runId }));
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const killed = await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'packrun-evidence-listen' AND datname = current_database()",
      );
      assert.ok(
        killed.rowCount !== null && killed.rowCount >= 2,
        "both replicas' listeners were cut",
      );
    } finally {
      await admin.end();
    }
    await ingestAll(
      ingester.client,
      range(2, 50).map((i) => testEvent(runId, `e${i}`)),
    );
    await ingestAll(ingester.client, [
      testEvent(runId, "end", { type: "run.cancelled", stepId: "" }),
    ]);
    // The follower polls only every 60 s: finishing now proves the reconnect path delivered.
    const started = performance.now();
    assert.deepEqual(await subscription, range(1, 51));
    assert.ok(performance.now() - started < 30_000);
  });
});

describe("slow subscribers", () => {
  const fixture = useEvidence("evidence_slow", {
    limits: { subscriberMaxBacklog: 1000, subscriberBacklogGraceMs: 1000, subscriberPageSize: 100 },
  });
  let evidence: TestEvidence;
  beforeAll(() => {
    evidence = fixture.evidence;
  });

  test("a stalled subscriber slows neither ingestion nor other subscribers; it is cut off and resumes without gap", async () => {
    const runId = "run-slow";
    const total = 4000;
    await ingestAll(
      evidence.client,
      range(1, 5).map((i) => testEvent(runId, `e${i}`)),
    );
    const abort = new AbortController();
    // Its own connection, as a separate slow client would have: a stalled stream must not hold
    // up the HTTP/2 connection the producer and the healthy subscriber share.
    const slowClient = createClient(
      EvidenceService,
      createGrpcTransport({ baseUrl: evidence.server.url }),
    );
    const stalled = slowClient
      .subscribeEvents({ tenant: "acme", runId }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    try {
      const received: number[] = [];
      for (let i = 0; i < 5; i++) {
        const next = await stalled.next();
        received.push(Number(next.value?.event?.sequence));
      }
      const healthy = collect(evidence.client.subscribeEvents({ tenant: "acme", runId }));
      healthy.catch(() => {}); // awaited below

      // The stalled subscriber reads nothing while the producer streams log lines at its own
      // steady pace (50 lines of 512 bytes every 25 ms, like a chatty step).
      const started = performance.now();
      for (let from = 6; from <= total; from += 50) {
        const to = Math.min(from + 49, total);
        await ingestAll(
          evidence.client,
          range(from, to).map((i) => testEvent(runId, `e${i}`, { message: "x".repeat(512) })),
        );
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await ingestAll(evidence.client, [
        testEvent(runId, "end", { type: "run.succeeded", stepId: "" }),
      ]);
      const ingestSeconds = (performance.now() - started) / 1000;
      assert.deepEqual(await healthy, range(1, total + 1), "the healthy subscriber got everything");
      console.log(
        `# slow subscriber: ingested ${total} events in ${ingestSeconds.toFixed(2)} s with a stalled subscriber attached`,
      );
      // Stay stalled past the grace period.
      await new Promise((resolve) => setTimeout(resolve, 1200));

      // Reading again: what was in flight arrives, then the cut-off with where to resume.
      let cutOff: ConnectError | undefined;
      try {
        for (;;) {
          const next = await stalled.next();
          if (next.done) break;
          received.push(Number(next.value.event?.sequence));
        }
      } catch (error) {
        cutOff = ConnectError.from(error);
      }
      assert.ok(
        cutOff !== undefined,
        `the stalled subscriber was not cut off (received ${received.length})`,
      );
      assert.equal(cutOff.code, Code.ResourceExhausted);
      assert.equal(cutOff.metadata.get(errorCodeHeader), "SUBSCRIBER_TOO_SLOW");
      const resumeAfter = Number(cutOff.metadata.get(resumeAfterTrailer));
      assert.equal(resumeAfter, received.at(-1));
      assert.match(cutOff.rawMessage, new RegExp(`after_sequence=${resumeAfter}`));
      console.log(
        `# slow subscriber: cut off after receiving ${received.length} of ${total + 1} events`,
      );
      const rest = await collect(
        evidence.client.subscribeEvents({
          tenant: "acme",
          runId,
          afterSequence: BigInt(resumeAfter),
        }),
      );
      assert.deepEqual([...received, ...rest], range(1, total + 1));
    } finally {
      abort.abort();
    }
  });
});
