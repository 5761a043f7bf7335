/**
 * Issue 8, item 11, second half: a client that opens a run's log stream and never reads is
 * disconnected by the gateway (it drops a client whose writes stall for 30 s), the gateway's
 * memory does not grow with what that client does not read, and meanwhile the gateway answers
 * and other clients get their streams.
 *
 * Bounded but not fast: about 35 s, most of it the gateway's stall limit. (The evidence
 * service's own cut-off of slow subscribers is tested in services/evidence/src/subscriptions.test.ts.)
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, test } from "vitest";
import {
  manifest,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  timed,
  waitForRun,
} from "../security/support/stack.ts";

let stack: SecurityStack;
beforeAll(async () => {
  stack = await startSecurityStack();
});
afterAll(() => stack.close());

/** A step printing ~8 MiB of 16,000-byte lines (few, big events), then staying alive until cancelled. */
const chatty = manifest(
  "chatty",
  `  steps:
    - id: talk
      run: {uses: builtin:shell, with: {argv: [sh, -c, "head -c 9000000 /dev/zero | tr '\\\\0' x | fold -w 16000; sleep 300"]}}
`,
);

/** Opens GET path as SSE on a raw socket and never reads from it. */
async function neverReading(path: string, token: string): Promise<Socket> {
  const url = new URL(stack.url);
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.pause();
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`,
  );
  return socket;
}

test("a never-reading log client is cut off after the stall limit; everyone else is served meanwhile", async () => {
  const alice = await stack.client();
  const token = await stack.mintToken();
  const run = await submitRun(alice, { manifest: chatty });
  // The run is producing its log while a client that never reads follows it.
  await waitForRun(alice, run.id, (r) => r.state === "running");
  const openedAt = Date.now();
  const stalled = await neverReading(`/api/runs/${run.id}/logs`, token);
  let closedAt: number | undefined;
  stalled.on("close", () => {
    closedAt = Date.now();
  });
  stalled.on("error", () => {});

  // While it stalls: the gateway answers, and a reading client gets the same log.
  const rss = () => process.memoryUsage().rss / 1024 / 1024;
  const rssBefore = rss();
  let peakRss = rssBefore;
  let healthWorstMs = 0;
  let cutAt: number | undefined;
  const reader = fetch(`${stack.url}/api/runs/${run.id}/logs?format=ndjson`, {
    headers: { authorization: `Bearer ${token}` },
  }).then(async (response) => {
    // Read until a good part of the log arrived, then stop (the run never ends by itself).
    const body = response.body?.getReader();
    let bytes = 0;
    while (body !== undefined && bytes < 6_000_000) {
      const { done, value } = await body.read();
      if (done) break;
      bytes += value.length;
    }
    await body?.cancel();
    return bytes;
  });
  const deadline = openedAt + 45_000;
  while (Date.now() < deadline && cutAt === undefined) {
    const { ms } = await timed(() => fetch(`${stack.url}/healthz`).then((r) => r.text()));
    healthWorstMs = Math.max(healthWorstMs, ms);
    peakRss = Math.max(peakRss, rss());
    if (
      stack
        .logLines()
        .some((line) => String(line.msg).includes("stopped reading; closing the connection"))
    )
      cutAt = Date.now();
    else await sleep(500);
  }
  assert.ok(cutAt !== undefined, "the gateway never gave up on the stalled client");
  const cutAfterMs = cutAt - openedAt;
  assert.ok(cutAfterMs >= 25_000 && cutAfterMs < 42_000, `cut after ${cutAfterMs} ms`);
  assert.ok((await reader) >= 6_000_000, "a reading client got the log meanwhile");
  assert.ok(healthWorstMs < 500, `/healthz took up to ${Math.round(healthWorstMs)} ms`);
  assert.ok(peakRss - rssBefore < 300, `RSS grew ${Math.round(peakRss - rssBefore)} MiB`);

  // The connection is really gone: reading what was buffered ends it, without the stream's end.
  let received = "";
  stalled.setEncoding("utf8");
  stalled.on("data", (chunk: string) => {
    received += chunk;
  });
  stalled.resume();
  const until = Date.now() + 10_000;
  while (closedAt === undefined && Date.now() < until) await sleep(100);
  assert.ok(closedAt !== undefined, "the socket was closed by the server");
  assert.match(received, /^HTTP\/1\.1 200/);
  assert.ok(!received.includes("event: end"), "the stream was cut, not finished");

  const cancelled = await alice.post(`/api/runs/${run.id}/cancel`, { reason: "test over" });
  assert.equal(cancelled.status, 200);
});
