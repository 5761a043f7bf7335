/**
 * readRunEventBatches against a real evidence service that cuts off subscribers which stay too far
 * behind: a direct (unbatched) subscriber that stalls during a flood is cut off (the control),
 * while the gateway's (batched) reader, cut off the same way, subscribes again and passes on
 * every event once, in order, to the end.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Event } from "@packrun/proto/evidence/v1";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { beforeAll, describe, test } from "vitest";
import {
  ingestAll,
  type TestEvidence,
  testEvent,
  useEvidence,
} from "../../evidence/src/test-helpers.ts";
import { readRunEventBatches } from "./run-event-source.ts";
import type { ServiceClients } from "./service-clients.ts";

let evidence: TestEvidence;
const total = 4000;
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Events 6..total at a chatty step's pace, then the run's end. */
async function flood(runId: string): Promise<void> {
  for (let from = 6; from <= total; from += 50) {
    const to = Math.min(from + 49, total);
    await ingestAll(
      evidence.client,
      range(from, to).map((i) => testEvent(runId, `e${i}`, { message: "x".repeat(512) })),
    );
    await sleep(25);
  }
  await ingestAll(evidence.client, [testEvent(runId, "end", { type: "run.succeeded" })]);
}

/** Reads 5 events, stalls through the flood and past the grace period, then reads the rest. */
async function stallThenRead(
  runId: string,
  batches: AsyncIterable<readonly Event[]>,
): Promise<number[]> {
  const received: number[] = [];
  const iterator = (async function* () {
    for await (const batch of batches) yield* batch;
  })();
  for (let i = 0; i < 5; i++) received.push(Number((await iterator.next()).value?.sequence));
  await flood(runId);
  await sleep(1200);
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return received;
    received.push(Number(next.value.sequence));
  }
}

describe("a log reader the evidence service cuts off as too slow", () => {
  const fixture = useEvidence("gateway_slow", {
    limits: { subscriberMaxBacklog: 1000, subscriberBacklogGraceMs: 1000, subscriberPageSize: 100 },
  });
  beforeAll(() => {
    evidence = fixture.evidence;
  });

  /** A client of its own connection, as a separate slow reader has. */
  const ownClient = () =>
    createClient(EvidenceService, createGrpcTransport({ baseUrl: evidence.server.url }));

  test("control: a stalled direct subscriber is cut off with SUBSCRIBER_TOO_SLOW", async () => {
    const runId = "run-control";
    await ingestAll(
      evidence.client,
      range(1, 5).map((i) => testEvent(runId, `e${i}`)),
    );
    const client = ownClient();
    const events = (async function* () {
      for await (const response of client.subscribeEvents({ tenant: "acme", runId }))
        if (response.event !== undefined) yield [response.event];
    })();
    const outcome = await stallThenRead(runId, events).then(
      () => "ended",
      (error: unknown) => ConnectError.from(error).metadata.get(errorCodeHeader),
    );
    assert.equal(outcome, "SUBSCRIBER_TOO_SLOW");
  }, 60_000);

  test("the gateway's reader subscribes again after a cut-off and gets every event once, in order, to the end", async () => {
    const runId = "run-gateway";
    await ingestAll(
      evidence.client,
      range(1, 5).map((i) => testEvent(runId, `e${i}`)),
    );
    const client = ownClient();
    // The real client, counting the subscriptions it opens. Batched subscriptions keep up with
    // this flood (the stalled reader's client buffers what it is sent), so the evidence service
    // has no reason to cut the first one off: it is cut off here, as the evidence service does
    // (same code, header and trailer), once it has passed on a third of the events.
    let subscriptions = 0;
    const counted = new Proxy(client, {
      get: (target, name, receiver) =>
        name === "subscribeEvents"
          ? (...args: Parameters<typeof target.subscribeEvents>) => {
              subscriptions++;
              if (subscriptions > 1) return target.subscribeEvents(...args);
              const stream = target.subscribeEvents(...args)[Symbol.asyncIterator]();
              return (async function* () {
                for (;;) {
                  const next = await stream.next();
                  if (next.done === true) return;
                  const last = next.value.events.at(-1)?.sequence ?? 0n;
                  yield next.value;
                  if (last >= BigInt(Math.floor(total / 3))) {
                    // The abandoned stream is drained to its end, so the server finishes it.
                    void (async () => {
                      while ((await stream.next()).done !== true);
                    })();
                    const error = new ConnectError("cut off", Code.ResourceExhausted);
                    error.metadata.set(errorCodeHeader, "SUBSCRIBER_TOO_SLOW");
                    throw error;
                  }
                }
              })();
            }
          : Reflect.get(target, name, receiver),
    });
    const clients = { evidence: counted } as unknown as ServiceClients;
    const received = await stallThenRead(
      runId,
      readRunEventBatches(clients, {
        tenant: "acme",
        runId,
        afterSequence: 0,
        stepId: "",
        follow: true,
        firstEventWaitMs: 5000,
        signal: new AbortController().signal,
      }),
    );
    assert.equal(subscriptions, 2, "cut off and subscribed again once");
    assert.deepEqual(received, range(1, total + 1));
  }, 60_000);
});
