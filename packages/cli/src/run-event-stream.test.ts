import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "vitest";
import type { RunEvent } from "./api-types.ts";
import { CliError } from "./cli-error.ts";
import { backoffDelayMs, EventCursor } from "./event-cursor.ts";
import { EventLineFormatter } from "./event-line.ts";
import { ExitCode } from "./exit-codes.ts";
import { GatewayClient } from "./gateway-client.ts";
import { GatewayError } from "./gateway-error.ts";
import { streamRunEvents } from "./run-event-stream.ts";
import {
  fakeEvent,
  sendProblem,
  sseFrame,
  startFakeGateway,
  startSse,
} from "./testing/fake-gateway.ts";
import { runCli } from "./testing/run-cli.ts";

const fast = { baseMs: 5, maxMs: 20 };
const logsPath = "GET /api/runs/r1/logs";

test("the cursor delivers each sequence once and remembers where to resume", () => {
  const cursor = new EventCursor(2);
  assert.equal(cursor.accept(1), false);
  assert.equal(cursor.accept(2), false);
  assert.equal(cursor.accept(3), true);
  assert.equal(cursor.accept(5), true, "a gap (a step filter) is fine");
  assert.equal(cursor.accept(4), false, "never backwards");
  assert.equal(cursor.accept(5), false);
  assert.equal(cursor.lastSequence, 5);
  assert.equal(cursor.delivered, 2);
  assert.equal(cursor.duplicates, 4);
});

test("backoff doubles from the base, is capped, and jitters down by at most 20%", () => {
  const policy = { baseMs: 100, maxMs: 1_000 };
  const none = () => 1;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 50].map((failures) => backoffDelayMs(failures, policy, none)),
    [100, 200, 400, 800, 1_000, 1_000],
  );
  assert.equal(
    backoffDelayMs(3, policy, () => 0),
    320,
  );
});

test("a dropped stream resumes with Last-Event-ID and never delivers an event twice", async () => {
  const gateway = await startFakeGateway({
    [logsPath]: (_request, response, index) => {
      startSse(response);
      if (index === 0) {
        response.write(
          `: heartbeat\n\n${[1, 2, 3].map((n) => sseFrame(fakeEvent(n, `line ${n}`))).join("")}`,
        );
        // Half a frame, then the connection dies.
        response.write('id: 4\nevent: run-event\ndata: {"sequ');
        setTimeout(() => response.destroy(), 20);
        return;
      }
      // The server replays from an older point than asked: the client drops the repeats.
      response.end(
        `${[2, 3, 4, 5].map((n) => sseFrame(fakeEvent(n, `line ${n}`))).join("")}event: end\ndata: {"state":"succeeded"}\n\n`,
      );
    },
  });
  try {
    const client = new GatewayClient({ baseUrl: gateway.url, token: "t" });
    const seen: number[] = [];
    const reconnects: string[] = [];
    const result = await streamRunEvents(client, {
      runId: "r1",
      follow: true,
      backoff: fast,
      onEvent: (event) => {
        seen.push(event.sequence);
      },
      onReconnect: ({ reason }) => reconnects.push(reason),
    });
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.equal(result.endState, "succeeded");
    assert.equal(result.reconnections, 1);
    assert.equal(reconnects.length, 1);
    const [first, second] = gateway.requests;
    assert.equal(first?.headers["last-event-id"], undefined);
    assert.equal(first?.url.searchParams.get("follow"), "true");
    assert.equal(first?.headers.authorization, "Bearer t");
    assert.equal(second?.headers["last-event-id"], "3");
    assert.equal(second?.url.searchParams.get("after"), "3");
  } finally {
    await gateway.close();
  }
});

test("a reconnect answered 204 (the run finished, nothing left) ends with the run's state", async () => {
  const gateway = await startFakeGateway({
    [logsPath]: (_request, response, index) => {
      if (index === 0) {
        startSse(response);
        // Every event, then the connection dies before `end` arrives.
        response.write([1, 2].map((n) => sseFrame(fakeEvent(n, `line ${n}`))).join(""));
        setTimeout(() => response.destroy(), 20);
        return;
      }
      response.writeHead(204).end();
    },
    "GET /api/runs/r1": (_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ id: "r1", state: "failed" }));
    },
  });
  try {
    const client = new GatewayClient({ baseUrl: gateway.url, token: "t" });
    const seen: number[] = [];
    const result = await streamRunEvents(client, {
      runId: "r1",
      follow: true,
      backoff: fast,
      onEvent: (event) => {
        seen.push(event.sequence);
      },
    });
    assert.deepEqual(seen, [1, 2]);
    assert.equal(result.endState, "failed");
    assert.equal(result.reconnections, 1);
  } finally {
    await gateway.close();
  }
});

test("a stream that goes silent (no heartbeat) is reconnected; heartbeats keep it alive", async () => {
  const gateway = await startFakeGateway({
    [logsPath]: async (_request, response, index) => {
      startSse(response);
      if (index === 0) {
        response.write(sseFrame(fakeEvent(1, "one")));
        // Heartbeats for a while (longer than the idle limit), then silence.
        for (let beat = 0; beat < 6; beat++) {
          await sleep(40);
          response.write(": hb\n\n");
        }
        return;
      }
      response.end(`${sseFrame(fakeEvent(2, "two"))}event: end\ndata: {"state":"failed"}\n\n`);
    },
  });
  try {
    const client = new GatewayClient({ baseUrl: gateway.url, token: "t" });
    const seen: number[] = [];
    const started = Date.now();
    const result = await streamRunEvents(client, {
      runId: "r1",
      follow: true,
      backoff: fast,
      idleTimeoutMs: 150,
      onEvent: (event) => {
        seen.push(event.sequence);
      },
    });
    assert.deepEqual(seen, [1, 2]);
    assert.equal(result.endState, "failed");
    assert.equal(result.reconnections, 1);
    assert.ok(Date.now() - started >= 240, "the heartbeats kept the first connection open");
  } finally {
    await gateway.close();
  }
});

test("without follow, a stream that simply ends is complete; --after is sent", async () => {
  const gateway = await startFakeGateway({
    [logsPath]: (_request, response) => {
      startSse(response);
      response.end(sseFrame(fakeEvent(8, "eight")));
    },
  });
  try {
    const client = new GatewayClient({ baseUrl: gateway.url, token: "t" });
    const seen: RunEvent[] = [];
    const result = await streamRunEvents(client, {
      runId: "r1",
      follow: false,
      after: 7,
      step: "build",
      onEvent: (event) => {
        seen.push(event);
      },
    });
    assert.deepEqual(
      seen.map((event) => event.sequence),
      [8],
    );
    assert.equal(result.endState, undefined);
    const [request] = gateway.requests;
    assert.equal(request?.url.searchParams.get("after"), "7");
    assert.equal(request?.url.searchParams.get("step"), "build");
    assert.equal(request?.url.searchParams.get("follow"), "false");
  } finally {
    await gateway.close();
  }
});

test("errors retrying cannot fix are thrown at once; transient ones are retried, then given up", async () => {
  const gateway = await startFakeGateway({
    "GET /api/runs/missing/logs": (_request, response) =>
      sendProblem(response, 404, "RUN_NOT_FOUND", "run missing not found"),
    "GET /api/runs/busy/logs": (_request, response) =>
      sendProblem(response, 503, "UNAVAILABLE", "evidence is restarting"),
  });
  try {
    const client = new GatewayClient({ baseUrl: gateway.url, token: "t" });
    await assert.rejects(
      streamRunEvents(client, { runId: "missing", follow: true, onEvent: () => {} }),
      (error: unknown) =>
        error instanceof GatewayError &&
        error.exitCode === ExitCode.notFound &&
        error.code === "RUN_NOT_FOUND",
    );
    assert.equal(gateway.requests.length, 1);
    await assert.rejects(
      streamRunEvents(client, {
        runId: "busy",
        follow: true,
        backoff: fast,
        maxConsecutiveFailures: 3,
        onEvent: () => {},
      }),
      (error: unknown) =>
        error instanceof CliError &&
        error.exitCode === ExitCode.retryable &&
        /lost the log stream of run busy after 3 attempts/.test(error.message),
    );
    assert.equal(gateway.requests.length, 1 + 4);
  } finally {
    await gateway.close();
  }
});

test("event lines: output with a bar, other events with their type, aligned", () => {
  const formatter = new EventLineFormatter();
  assert.equal(formatter.format(fakeEvent(1, "hello")), "12:00:01.000  build    │ hello");
  assert.equal(
    formatter.format({ ...fakeEvent(2, "oops"), type: "log.stderr" }),
    "12:00:02.000  build    ! oops",
  );
  assert.equal(
    formatter.format({
      ...fakeEvent(3, "attempt 1"),
      type: "step.running",
      stepId: "a-long-step-id",
    }),
    "12:00:03.000  a-long-step-id   step.running: attempt 1",
  );
  assert.equal(
    formatter.format({ ...fakeEvent(4, ""), type: "run.succeeded", stepId: "" }),
    "12:00:04.000  run              run.succeeded",
  );
  assert.equal(
    formatter.format(fakeEvent(5, "\u001b[31mred")),
    "12:00:05.000  build          │ \\u001b[31mred",
  );
});

test("`packrun logs -f` prints every line once, in order, across a dropped connection", async () => {
  const gateway = await startFakeGateway({
    "GET /api/runs/r1/logs": (request, response, index) => {
      startSse(response);
      if (index === 0) {
        response.write([1, 2].map((n) => sseFrame(fakeEvent(n, `line ${n}`))).join(""));
        setTimeout(() => response.destroy(), 20);
        return;
      }
      const after = Number(request.headers["last-event-id"] ?? 0);
      const frames = [1, 2, 3, 4]
        .filter((n) => n > after - 1)
        .map((n) => sseFrame(fakeEvent(n, `line ${n}`)));
      response.end(`${frames.join("")}event: end\ndata: {"state":"succeeded"}\n\n`);
    },
  });
  try {
    const table = await runCli(["logs", "r1", "-f", "--url", gateway.url, "--token", "t"], {
      cwd: process.cwd(),
    });
    assert.equal(table.code, 0, table.stderr);
    assert.deepEqual(
      table.stdout.trimEnd().split("\n"),
      [1, 2, 3, 4].map((n) => `12:00:0${n}.000  build    │ line ${n}`),
    );
    assert.match(table.stderr, /log stream interrupted .*reconnecting/);
    const json = await runCli(
      ["logs", "r1", "--follow", "--format", "json", "--url", gateway.url, "--token", "t"],
      { cwd: process.cwd() },
    );
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(
      json.stdout
        .trimEnd()
        .split("\n")
        .map((line) => (JSON.parse(line) as RunEvent).sequence),
      [1, 2, 3, 4],
    );
  } finally {
    await gateway.close();
  }
});
