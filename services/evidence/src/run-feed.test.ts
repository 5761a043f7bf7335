/**
 * The per-run feed: many live subscribers of one run share one store read per new page of
 * events, get batched messages, every event once and in order, and a stalled subscriber of the
 * same feed holds up neither the feed nor the others.
 */
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { generateSigningKeyPem, loadSigningKey } from "@packrun/attestation";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { EvidenceService, type SubscribeEventsResponse } from "@packrun/proto/evidence/v1";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type EvidenceServer, startEvidenceServer } from "./evidence-server.ts";
import { ingestAll, testEvent, testLogger } from "./test-helpers.ts";

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, index) => from + index);

/** The statement readEvents sends (expanding log chunks): one per read of a run's events. */
const isEventRead = (sql: unknown) =>
  typeof sql === "string" && sql.includes("jsonb_array_elements(c.lines)");

/** The sequences of a batched subscription, and how many messages carried them. */
async function collect(
  stream: AsyncIterable<SubscribeEventsResponse>,
): Promise<{ sequences: number[]; messages: number }> {
  const sequences: number[] = [];
  let messages = 0;
  for await (const response of stream) {
    messages++;
    assert.equal(response.event, undefined, "a batched subscription uses `events`");
    for (const event of response.events) sequences.push(Number(event.sequence));
  }
  return { sequences, messages };
}

describe("run feeds", () => {
  let db: TestDatabase;
  let database: Database;
  let server: EvidenceServer;
  /** The parameters of every event read: run, after, up to, limit. */
  let reads: unknown[][] = [];
  let client: ReturnType<typeof createClient<typeof EvidenceService>>;
  beforeAll(async () => {
    db = await createTestDatabase("evidence_feed");
    const pool = createPostgresDatabase({ url: db.url, maxConnections: 20 });
    // The real pool, counting the event reads that go through it.
    database = new Proxy(pool, {
      get: (target, name, receiver) =>
        name === "query"
          ? (sql: string, params?: unknown[]) => {
              if (isEventRead(sql)) reads.push(params ?? []);
              return target.query(sql, params);
            }
          : Reflect.get(target, name, receiver),
    });
    server = await startEvidenceServer({
      databaseUrl: db.url,
      database,
      logger: testLogger,
      artifactRoot: await mkdtemp(join(tmpdir(), "packrun-artifacts-")),
      signingKey: loadSigningKey(generateSigningKeyPem("ed25519")),
      limits: { subscriberPageSize: 200, subscriberPollMs: 60_000 },
    });
    client = createClient(EvidenceService, createGrpcTransport({ baseUrl: server.url }));
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
    await db?.drop();
  });

  test("twenty readers of one run get every event once, in order, in batches, from one read per page", async () => {
    const runId = "run-shared";
    const subscribers = 20;
    const batches = 40;
    const perBatch = 50;
    const total = batches * perBatch;
    await ingestAll(client, [testEvent(runId, "e1")]);
    const following = range(1, subscribers).map(() =>
      collect(client.subscribeEvents({ tenant: "acme", runId, afterSequence: 0n, batch: true })),
    );
    // Every subscriber replays the stored event from the store (one read each) before following.
    while (reads.length < subscribers) await sleep(20);
    reads = [];
    for (let batch = 0; batch < batches; batch++) {
      const from = 2 + batch * perBatch;
      await ingestAll(
        client,
        range(from, from + perBatch - 1).map((i) =>
          testEvent(runId, `e${i}`, { message: "x".repeat(200) }),
        ),
      );
      await sleep(10);
    }
    await ingestAll(client, [testEvent(runId, "end", { type: "run.succeeded", stepId: "" })]);
    const results = await Promise.all(following);
    for (const { sequences } of results) assert.deepEqual(sequences, range(1, total + 2));
    const messages = results.reduce((sum, result) => sum + result.messages, 0);
    console.log(
      `# ${subscribers} readers: ${reads.length} event reads, ${messages} messages for ${subscribers * (total + 1)} events`,
    );
    // One reader for all: each read starts where the previous one ended (per-subscriber reading
    // would read every range once per subscriber), and together they cover the flood once.
    const ranges = reads.map(([, after, upTo]) => [Number(after), Number(upTo)] as const);
    ranges.forEach(([after], index) => {
      assert.equal(
        after,
        index === 0 ? 1 : ranges[index - 1]?.[1],
        `read ${index} of ${ranges.length}`,
      );
    });
    assert.equal(ranges.at(-1)?.[1], total + 2);
    // Batched: messages carry several events each. How many depends on how the ingestion's
    // commits and the feed's reads interleave (about 18 per message on a quiet machine, 9 in a
    // loaded CI run), so the bound asks only for at least two on average.
    assert.ok(messages < (subscribers * (total + 1)) / 2, `${messages} messages`);
  }, 60_000);

  test("a stalled reader of the same run delays neither the feed nor a fast reader, and later gets everything", async () => {
    const runId = "run-stalled";
    const total = 3000;
    await ingestAll(client, [testEvent(runId, "e1")]);
    // Its own connection, as a separate slow client has.
    const slowClient = createClient(EvidenceService, createGrpcTransport({ baseUrl: server.url }));
    const stalled = slowClient
      .subscribeEvents({ tenant: "acme", runId, batch: true })
      [Symbol.asyncIterator]();
    const first = (await stalled.next()).value as SubscribeEventsResponse;
    assert.deepEqual(
      first.events.map((event) => Number(event.sequence)),
      [1],
    );
    const fast = collect(client.subscribeEvents({ tenant: "acme", runId, batch: true }));
    const started = performance.now();
    for (let from = 2; from <= total; from += 100) {
      const to = Math.min(from + 99, total);
      await ingestAll(
        client,
        range(from, to).map((i) => testEvent(runId, `e${i}`, { message: "y".repeat(2048) })),
      );
    }
    await ingestAll(client, [testEvent(runId, "end", { type: "run.succeeded", stepId: "" })]);
    const { sequences } = await fast;
    const fastMs = performance.now() - started;
    assert.deepEqual(sequences, range(1, total + 1), "the fast reader got everything");
    console.log(
      `# fast reader done ${fastMs.toFixed(0)} ms after the flood began, beside a stalled one`,
    );
    // The stalled reader, reading at last, gets the rest (from the feed or the store).
    const received = [1];
    for (;;) {
      const next = await stalled.next();
      if (next.done === true) break;
      for (const event of next.value.events) received.push(Number(event.sequence));
    }
    assert.deepEqual(received, range(1, total + 1));
  }, 60_000);

  test("a reader that cancels during a flood releases its subscription (the server still closes)", async () => {
    const runId = "run-cancelled";
    await ingestAll(client, [testEvent(runId, "e1")]);
    const abort = new AbortController();
    const ownClient = createClient(EvidenceService, createGrpcTransport({ baseUrl: server.url }));
    const reader = ownClient
      .subscribeEvents({ tenant: "acme", runId, batch: true }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    await reader.next();
    for (let from = 2; from <= 2001; from += 100) {
      await ingestAll(
        client,
        range(from, from + 99).map((i) => testEvent(runId, `e${i}`, { message: "z".repeat(4096) })),
      );
    }
    abort.abort();
    await reader.next().catch(() => {});
    await ingestAll(client, [testEvent(runId, "end", { type: "run.succeeded", stepId: "" })]);
    // afterAll closes the server: it would wait for ever on a subscription left behind.
  });

  test("another tenant cannot attach to a run's feed, even while it is open", async () => {
    const runId = "run-private-feed";
    await ingestAll(client, [testEvent(runId, "e1")]);
    const abort = new AbortController();
    const owner = client
      .subscribeEvents({ tenant: "acme", runId, batch: true }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    await owner.next();
    await assert.rejects(
      collect(client.subscribeEvents({ tenant: "umbrella", runId, batch: true })),
      /not found/,
    );
    abort.abort();
    await owner.next().catch(() => {});
  });
});
