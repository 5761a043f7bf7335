import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { generateSigningKeyPem, loadSigningKey } from "@packrun/attestation";
import {
  type ChannelListener,
  createPostgresChannelListener,
  createPostgresDatabase,
  type Database,
} from "@packrun/db";
import { type EvidenceServer, startEvidenceServer } from "@packrun/evidence";
import { createLogger } from "@packrun/logging";
import { ExecutorService, type Run, RunState, StepState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, test } from "vitest";
import { createEvidenceSink } from "../evidence/evidence-sink.ts";
import type { Executor } from "../rpc/executor-server.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";
import { executorChannels } from "./change-hints.ts";

const logger = createLogger({
  service: "notify-test",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
});

let stack: ExecutorStack;
let listener: ChannelListener;
const sessions: Http2SessionManager[] = [];

beforeAll(async () => {
  // The stack's executor runs the steps (and polls); the executors under test only serve.
  stack = await startExecutorStack();
  listener = await createPostgresChannelListener({
    url: stack.databaseUrl,
    channels: executorChannels,
    logger,
  });
});

afterAll(async () => {
  for (const session of sessions) session.abort();
  await stack.close();
  await listener.close();
});

/** Wraps `inner`, counting the watches currently subscribed. */
function counting(inner: ChannelListener): ChannelListener & { active(): number } {
  let active = 0;
  const count = (unwatch: () => void) => {
    active++;
    let done = false;
    return () => {
      if (!done) active--;
      done = true;
      unwatch();
    };
  };
  return {
    watch: (channel, key, each) => count(inner.watch(channel, key, each)),
    watchAll: (channel, each) => count(inner.watchAll(channel, each)),
    close: () => inner.close(),
    active: () => active,
  };
}

/** A listener that never hears anything (notifications lost, or never sent). */
const deaf: ChannelListener = {
  watch: () => () => {},
  watchAll: () => () => {},
  close: async () => {},
};

function clientOf(executor: Executor) {
  const session = new Http2SessionManager(executor.url);
  sessions.push(session);
  return createClient(
    ExecutorService,
    createGrpcTransport({ baseUrl: executor.url, sessionManager: session }),
  );
}

const twoSleeps = packManifest(
  "watch-pushed",
  `  steps:
    - id: a
      run: {uses: builtin:shell, with: {script: 'sleep 0.4'}}
    - id: b
      run: {uses: builtin:shell, with: {script: 'sleep 0.4'}}
`,
);

/** Reads a WatchRun stream to its end; the wall-clock time it ended. */
async function watchToEnd(
  client: ReturnType<typeof clientOf>,
  runId: string,
): Promise<{ views: Run[]; endedAt: number }> {
  const views: Run[] = [];
  for await (const message of client.watchRun({ tenant: "acme", runId }, { timeoutMs: 30_000 }))
    if (message.run !== undefined) views.push(message.run);
  return { views, endedAt: Date.now() };
}

async function finishedAt(runId: string): Promise<number> {
  const row = (
    await stack.database.query<{ finished_at: Date }>(
      "SELECT finished_at FROM runs WHERE id = $1",
      [runId],
    )
  ).rows[0];
  assert.ok(row?.finished_at instanceof Date);
  return row.finished_at.getTime();
}

/** Watches a run to the end; asserts the last view is terminal and came soon after the run's end. */
async function watchToEndPromptly(
  client: Parameters<typeof watchToEnd>[0],
  id: string,
): ReturnType<typeof watchToEnd> {
  const watched = await watchToEnd(client, id);
  const last = watched.views.at(-1);
  assert.equal(last?.state, RunState.SUCCEEDED);
  assert.ok(!last.steps.some((step) => step.state === StepState.RUNNING));
  const lag = watched.endedAt - (await finishedAt(id));
  assert.ok(lag < 2000, `the stream ended ${lag} ms after the run finished`);
  return watched;
}

test("WatchRun is told of every change and ends within moments of the run, not at its fallback read", async () => {
  const changes = counting(listener);
  const watcher = await stack.addExecutor({
    work: false,
    changes: { listener: changes },
    watchIntervalMs: 5000,
  });
  const id = await stack.submit(twoSleeps);
  const { views } = await watchToEndPromptly(clientOf(watcher), id);
  // The run lasts about a second: with reads every 5 s only, step b would never be seen running.
  assert.ok(
    views.some((view) => view.steps.find((step) => step.id === "b")?.state === StepState.RUNNING),
    "step b seen running",
  );
  assert.equal(changes.active(), 0, "unsubscribed once the stream ended");
});

test("without notifications WatchRun still ends with the terminal view (fallback reads)", async () => {
  const watcher = await stack.addExecutor({
    work: false,
    changes: { listener: deaf },
    watchIntervalMs: 300,
  });
  const id = await stack.submit(twoSleeps);
  await watchToEndPromptly(clientOf(watcher), id);
});

test("a cancelled WatchRun stops and unsubscribes at once, long before its fallback read", async () => {
  const changes = counting(listener);
  const watcher = await stack.addExecutor({
    work: false,
    changes: { listener: changes },
    watchIntervalMs: 10_000,
  });
  const id = await stack.submit(
    packManifest(
      "watch-cancel",
      `  approvals: [{id: go}]
  steps:
    - id: gate
      gate: {approval: {id: go}}
`,
    ),
  );
  await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
  const abort = new AbortController();
  const stream = clientOf(watcher).watchRun(
    { tenant: "acme", runId: id },
    { signal: abort.signal },
  );
  for await (const message of stream) {
    assert.equal(message.run?.state, RunState.AWAITING_APPROVAL);
    break;
  }
  abort.abort();
  const deadline = Date.now() + 1000;
  while (changes.active() > 0 && Date.now() < deadline) await sleep(10);
  assert.equal(changes.active(), 0, "the server-side stream ended and unsubscribed");
  await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "test over" });
});

test("the shipper sends a run's events and finalises it on notification, not on its fallback timer", async (t) => {
  const evidenceDatabase: Database = createPostgresDatabase({
    url: stack.databaseUrl,
    schema: "evidence",
  });
  const artifactRoot = await mkdtemp(join(tmpdir(), "packrun-artifacts-"));
  const evidence: EvidenceServer = await startEvidenceServer({
    database: evidenceDatabase,
    databaseUrl: stack.databaseUrl,
    logger,
    artifactRoot,
    signingKey: loadSigningKey(generateSigningKeyPem("ed25519"), "test"),
  });
  const sink = createEvidenceSink({
    database: stack.database,
    logger,
    evidenceUrl: evidence.url,
    executorId: "executor@test",
    changes: listener,
    intervalMs: 10_000,
  });
  t.onTestFinished(async () => {
    await sink.stop();
    await evidence.close();
    await evidenceDatabase.close();
    await rm(artifactRoot, { recursive: true, force: true });
  });
  // Earlier tests' runs are shipped by the first, immediate round; this test's run comes after.
  sink.start();
  await sleep(500);
  const id = await stack.submit(
    packManifest(
      "ship-pushed",
      `  steps:
    - id: hello
      run: {uses: builtin:shell, with: {script: 'echo hello'}}
`,
    ),
  );
  await stack.waitFor(id);
  const finished = await finishedAt(id);
  let finalized: Date | null = null;
  while (finalized === null && Date.now() - finished < 5000) {
    finalized =
      (
        await stack.database.query<{ finalized_at: Date | null }>(
          "SELECT finalized_at FROM runs WHERE id = $1",
          [id],
        )
      ).rows[0]?.finalized_at ?? null;
    if (finalized === null) await sleep(20);
  }
  assert.ok(finalized !== null, "finalised within 5 s, half the fallback interval");
  const lag = finalized.getTime() - finished;
  assert.ok(lag < 2000, `finalised ${lag} ms after the run finished`);
  const shipped = (
    await evidenceDatabase.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM events WHERE run_id = $1 AND type = 'log.stdout')::int
            + (SELECT count(*) FROM log_chunks c CROSS JOIN LATERAL jsonb_array_elements(c.lines) AS l
                WHERE c.run_id = $1 AND l->>'y' = 'log.stdout')::int AS n`,
      [id],
    )
  ).rows[0]?.n;
  assert.equal(shipped, 1, "the step's log line reached the evidence service");
});
