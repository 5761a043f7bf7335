/**
 * A step's output is stored in chunks (one row per batch of lines), yet the SSE log stays one
 * message per line: every line in order across chunks, and a stock `eventsource` client that
 * resumes (Last-Event-ID) from the middle of a chunk gets exactly the lines after it.
 */
import assert from "node:assert/strict";
import { createPostgresDatabase } from "@packrun/db";
import { EventSource } from "eventsource";
import { afterAll, beforeAll, test } from "vitest";
import type { RunJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";

const lines = 4000;
const floodPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: flood, version: 1.0.0}
spec:
  steps:
    - id: flood
      run: {uses: builtin:shell, with: {script: 'seq 1 ${lines}'}}
`;

let stack: GatewayStack;
let token: string;
let finished: RunJson;

beforeAll(async () => {
  stack = await startGatewayStack();
  token = await stack.mintToken();
  const alice = restClient(stack.url, token);
  const submitted = await submitRun(alice, { manifest: floodPack });
  finished = await waitForRun(alice, submitted.id, undefined, 60_000);
  assert.equal(finished.state, "succeeded");
}, 120_000);

afterAll(() => stack?.close());

interface Received {
  id: string;
  sequence: number;
  type: string;
  message: string;
}

/** Reads the run's SSE log with a stock EventSource (optionally resuming) until it closes. */
async function readSse(lastEventId?: number): Promise<{ events: Received[]; statuses: number[] }> {
  const statuses: number[] = [];
  const events: Received[] = [];
  const source = new EventSource(`${stack.url}/api/runs/${finished.id}/logs`, {
    fetch: async (input, init) => {
      const headers: Record<string, string> = {
        ...(init?.headers as Record<string, string>),
        authorization: `Bearer ${token}`,
      };
      // The first request resumes from the given id, as a client reconnecting after it would.
      if (statuses.length === 0 && lastEventId !== undefined)
        headers["last-event-id"] = String(lastEventId);
      const response = await fetch(input, { ...init, headers });
      statuses.push(response.status);
      return response;
    },
  });
  source.addEventListener("run-event", (message) => {
    const data = JSON.parse(message.data) as { sequence: number; type: string; message: string };
    events.push({ id: message.lastEventId, ...data });
  });
  // After `end` the stock client reconnects; the 204 then closes it for good.
  const deadline = Date.now() + 30_000;
  while (source.readyState !== EventSource.CLOSED && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 100));
  source.close();
  return { events, statuses };
}

test("every line arrives as one SSE message, in order across chunks, with gapless ids", async () => {
  const { events, statuses } = await readSse();
  assert.deepEqual(statuses, [200, 204]);
  const sequences = events.map((event) => event.sequence);
  assert.deepEqual(
    sequences,
    Array.from({ length: sequences.length }, (_, i) => i + 1),
  );
  assert.ok(events.every((event) => event.id === String(event.sequence)));
  const output = events.filter((event) => event.type === "log.stdout").map((e) => e.message);
  assert.deepEqual(
    output,
    Array.from({ length: lines }, (_, i) => String(i + 1)),
  );
}, 60_000);

test("an EventSource resuming in the middle of a chunk gets the following lines only", async () => {
  const database = createPostgresDatabase({ url: stack.databaseUrl });
  let chunks: { first_sequence: number; last_sequence: number }[];
  try {
    chunks = (
      await database.query<{ first_sequence: number; last_sequence: number }>(
        `SELECT first_sequence::int, last_sequence::int FROM evidence.log_chunks
          WHERE run_id = $1 AND step_id <> '' ORDER BY first_sequence`,
        [finished.id],
      )
    ).rows;
  } finally {
    await database.close();
  }
  // The output was stored in chunks, far fewer rows than lines.
  assert.ok(chunks.length >= 1 && chunks.length < lines / 10, `${chunks.length} chunks`);
  const chunk = chunks.find((row) => row.last_sequence - row.first_sequence >= 2);
  assert.ok(chunk !== undefined, "a chunk of three lines or more");
  const resumeAfter = chunk.first_sequence + 1;
  const all = (await readSse()).events;
  const last = all.at(-1)?.sequence ?? 0;
  const { events, statuses } = await readSse(resumeAfter);
  assert.deepEqual(statuses, [200, 204]);
  assert.deepEqual(
    events.map((event) => event.sequence),
    Array.from({ length: last - resumeAfter }, (_, i) => resumeAfter + 1 + i),
  );
  assert.deepEqual(events, all.slice(resumeAfter));
}, 90_000);
