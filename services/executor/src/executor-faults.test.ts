/**
 * Fault tests of the executor on real Postgres and Redis: a worker killed with SIGKILL, a worker
 * cut off from the database (fencing), Redis losing its data, a plan changed behind the
 * executor's back, dead letters and graceful drains.
 *
 * One API-only executor (RPCs + reconciler, no worker) serves the whole file; each test adds the
 * workers it needs (in this process or as separate processes) and stops them again, so the
 * queue has exactly the consumers the test says.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import type { Executor } from "./rpc/executor-server.ts";
import type { AttemptRow } from "./rpc/run-service.ts";
import { createReconciler } from "./run/reconciler.ts";
import type { StepExecutionResult } from "./runtime/index.ts";
import { releaseWorkdirMounts } from "./runtime/workdir-limit.ts";
import { createMemorySecretVault } from "./secrets/secret-vault.ts";
import { boundApproval } from "./testing/bound-approval.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "./testing/executor-stack.ts";
import { eventually, processesWithMarker, uniqueMarker } from "./testing/processes.ts";
import { createBullmqWorkQueue } from "./worker/bullmq-work-queue.ts";
import { createLogWriter } from "./worker/log-writer.ts";
import { createMemoryWorkQueue } from "./worker/memory-work-queue.ts";
import { StepWorker } from "./worker/step-worker.ts";

const pack = packManifest;

interface StepRowLite {
  state: string;
  attempt: number;
  fence: number;
  lease_owner: string | null;
  failed_attempts: number;
  lost_attempts: number;
  outputs: Record<string, unknown>;
  reason: string;
}

let stack: ExecutorStack;
let scratch: string;
beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  scratch = await mkdtemp(join(tmpdir(), "packrun-faults-"));
});
afterAll(async () => {
  await stack.close();
  // Workers made here are never drained: unmount the workdir slots they kept ready.
  await releaseWorkdirMounts((mount) => mount.mountPoint.startsWith(`${scratch}/`));
  await rm(scratch, { recursive: true, force: true });
});

async function attempts(runId: string, stepId?: string): Promise<AttemptRow[]> {
  return (
    await stack.database.query<AttemptRow>(
      "SELECT step_id, attempt, state, worker_id, reason, started_at, finished_at FROM step_attempts WHERE run_id = $1 AND ($2::text IS NULL OR step_id = $2) ORDER BY step_id, attempt",
      [runId, stepId ?? null],
    )
  ).rows;
}

async function stepRow(runId: string, stepId: string): Promise<StepRowLite | undefined> {
  return (
    await stack.database.query<StepRowLite>(
      "SELECT state, attempt, fence, lease_owner, failed_attempts, lost_attempts, outputs, reason FROM steps WHERE run_id = $1 AND step_id = $2",
      [runId, stepId],
    )
  ).rows[0];
}

/** A worker-only executor in this process. */
function addWorker(worker: { concurrency?: number; leaseMs?: number } = {}): Promise<Executor> {
  return stack.addExecutor({
    serve: false,
    worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 2, ...worker },
  });
}

async function lines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter((line) => line !== "");
}

test("kill -9 of a worker process mid-step: retried elsewhere after the lease, recorded as lost, no orphan", async () => {
  const dir = await stepSharedDir("kill-");
  const marker = uniqueMarker();
  const doomed = await stack.spawnWorker({ leaseMs: 2000, concurrency: 1 });
  const id = await stack.submit(
    pack(
      "kill-nine",
      `  inputs: [{name: dir, type: string}, {name: marker, type: string}]
  steps:
    - id: slow
      run:
        uses: builtin:shell
        with:
          env: {D: "{{ inputs.dir }}", M: "{{ inputs.marker }}"}
          script: |
            if [ -e "$D/first-attempt" ]; then echo "second attempt"; exit 0; fi
            touch "$D/first-attempt"
            (setsid sh -c 'sleep 1000; :' "$M" &)
            sh -c 'sleep 1000; :' "$M" &
            wait
    - id: after
      run: {uses: builtin:noop}
`,
    ),
    { inputs: { dir, marker } },
  );
  // The step runs on the doomed worker, with a child and a double-forked grandchild.
  await eventually(
    "the step running on the doomed worker with both its processes",
    async () => {
      const row = await stepRow(id, "slow");
      return (
        row?.state === "running" &&
        row.lease_owner === doomed.workerId &&
        (await processesWithMarker(marker)).length === 2
      );
    },
    { timeoutMs: 60_000, describe: async () => JSON.stringify(await stepRow(id, "slow")) },
  );
  const rescuer = await addWorker();
  const killedAt = Date.now();
  doomed.child.kill("SIGKILL");
  assert.equal((await doomed.exited).signal, "SIGKILL");

  await eventually(
    "every process of the killed worker's step to be gone",
    async () => (await processesWithMarker(marker)).length === 0,
    { timeoutMs: 30_000, describe: async () => `${await processesWithMarker(marker)}` },
  );
  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);

  const [lost, retried, ...more] = await attempts(id, "slow");
  assert.equal(more.length, 0);
  assert.equal(lost?.state, "lost");
  assert.equal(lost?.worker_id, doomed.workerId);
  assert.match(lost?.reason ?? "", /lease expired/);
  assert.equal(retried?.state, "succeeded");
  assert.equal(retried?.worker_id, rescuer.worker?.id);
  // Not before the lease (2 s, last renewed at most ~0.7 s before the kill) had expired.
  assert.ok(
    (retried?.started_at.getTime() ?? 0) - killedAt >= 1000,
    `retried ${(retried?.started_at.getTime() ?? 0) - killedAt} ms after the kill`,
  );
  const step = await stepRow(id, "slow");
  assert.equal(step?.lost_attempts, 1, "a lost attempt does not use the retry budget");
  assert.equal(step?.failed_attempts, 0);
  await rescuer.close(5000);
});

test("a worker cut off from the database cannot record its late result (fencing)", async () => {
  const id = await stack.submit(
    pack(
      "fenced",
      `  steps:
    - id: work
      run: {uses: builtin:shell, with: {script: 'echo "by=rescuer" >> "$PACKRUN_OUTPUT"'}}
`,
    ),
  );
  // Nobody consumes the queue yet: the soon-partitioned worker takes the step by hand.
  let cut = false;
  const partitioned = (): Promise<never> =>
    Promise.reject(new Error("network partition: database unreachable"));
  const database: Database = {
    query: (text, params) => (cut ? partitioned() : stack.database.query(text, params)),
    transaction: (work) => (cut ? partitioned() : stack.database.transaction(work)),
    close: async () => {},
  };
  const logger = createLogger({ service: "partitioned", level: "silent" });
  const logs = createLogWriter(database, logger);
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started = () => {};
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  const worker = new StepWorker({
    database,
    queue: createMemoryWorkQueue(),
    vault: createMemorySecretVault(),
    logs,
    logger,
    workRoot: scratch,
    workerId: "partitioned-worker",
    leaseMs: 1500,
    enqueue: async () => {},
    // Finishes "successfully" only when the test lets it, whatever its signal says.
    runStep: async (): Promise<StepExecutionResult> => {
      started();
      await released;
      return {
        outcome: "succeeded",
        exitCode: 0,
        signal: null,
        reason: "exited with code 0",
        durationMs: 1,
        cpuMicros: 0,
        peakMemoryBytes: 0,
        outputs: { by: "partitioned" },
        artifacts: [],
        logTruncated: false,
      };
    },
  });
  const handled = worker.handle({
    runId: id,
    stepId: "work",
    tenant: "acme",
    priority: 0,
    attempt: 0,
  });
  await running;
  const claimed = await stepRow(id, "work");
  assert.equal(claimed?.lease_owner, "partitioned-worker");
  const staleFence = claimed?.fence ?? 0;
  cut = true;

  // The lease runs out; the reconciler takes the step back under a new fence, another worker runs it.
  const rescuer = await addWorker();
  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);

  // The partition heals and the old worker tries to record its result.
  cut = false;
  release();
  assert.deepEqual(await handled, { kind: "done" });
  await logs.close();

  const step = await stepRow(id, "work");
  assert.equal(step?.state, "succeeded");
  assert.deepEqual(step?.outputs, { by: "rescuer" }, "the late result was discarded");
  assert.ok((step?.fence ?? 0) > staleFence);
  assert.deepEqual(
    (await attempts(id)).map((attempt) => [attempt.attempt, attempt.state, attempt.worker_id]),
    [
      [1, "lost", "partitioned-worker"],
      [2, "succeeded", rescuer.worker?.id],
    ],
  );
  // The stale token matches nothing: no write carrying it can change the step.
  const late = await stack.database.query(
    "UPDATE steps SET state = 'failed', reason = 'late write' WHERE run_id = $1 AND step_id = 'work' AND fence = $2 AND state = 'running'",
    [id, staleFence],
  );
  assert.equal(late.rowCount, 0);
  await rescuer.close(5000);
});

test("Redis loses all its data mid-run: the queue is rebuilt from Postgres, no step runs twice", async () => {
  const dir = await stepSharedDir("flush-");
  const ran = join(dir, "ran");
  // A lease well above heartbeat delays on a loaded machine: a worker that misses its lease
  // stops its step and hands it back, and a re-run would write the marker file twice.
  const worker = await addWorker({ concurrency: 2, leaseMs: 10_000 });
  const children = Array.from({ length: 16 }, (_, n) => `c${n}`);
  const wide = await stack.submit(
    pack(
      "wide",
      `  inputs: [{name: dir, type: string}]
  steps:
    - id: fan
      parallel:
        steps:
${children
  .map(
    (child) =>
      `          - id: ${child}\n            run: {uses: builtin:shell, with: {script: 'echo ${child} >> "$D/ran"; sleep 0.3', env: {D: "{{ inputs.dir }}"}}}`,
  )
  .join("\n")}
    - id: after
      run: {uses: builtin:shell, with: {script: 'echo after >> "$D/ran"', env: {D: "{{ inputs.dir }}"}}}
`,
    ),
    { inputs: { dir } },
  );
  // A retry waiting out its backoff: a delayed queue entry when Redis is flushed.
  const flaky = await stack.submit(
    pack(
      "flaky",
      `  inputs: [{name: dir, type: string}]
  steps:
    - id: flaky
      retries: {maxAttempts: 2, backoffSeconds: 3}
      run:
        uses: builtin:shell
        with:
          env: {D: "{{ inputs.dir }}"}
          script: 'if [ -e "$D/flaky-failed" ]; then echo flaky >> "$D/ran"; exit 0; fi; touch "$D/flaky-failed"; exit 1'
`,
    ),
    { inputs: { dir }, priority: 10 },
  );
  // A run whose secrets live only in Redis: they are lost with it.
  const secretive = await stack.submit(
    pack(
      "secretive",
      `  secrets: [{name: token}]
  approvals: [{id: go}]
  steps:
    - id: wait
      gate: {approval: {id: go, message: go?}}
    - id: use
      run: {uses: builtin:shell, with: {script: 'test -n "$T"', env: {T: "{{ secrets.token }}"}}}
`,
    ),
    { secrets: { token: "s3cr3t-value" } },
  );
  await eventually(
    "steps queued, a retry delayed and a run waiting for approval",
    async () => {
      const retry = await stepRow(flaky, "flaky");
      const depth = await stack.queue.depth();
      const gated = await stepRow(secretive, "wait");
      return (
        retry?.state === "pending" &&
        retry.failed_attempts === 1 &&
        depth.waiting >= 3 &&
        gated?.state === "awaiting-approval"
      );
    },
    { timeoutMs: 60_000, describe: async () => JSON.stringify(await stack.queue.depth()) },
  );
  assert.ok((await stack.flushRedis()) > 0);

  const planHash = (await stack.client.getRun({ tenant: "acme", runId: secretive })).run?.planHash;
  await stack.client.decideApproval(
    boundApproval({
      tenant: "acme",
      runId: secretive,
      approvalId: "go",
      planHash: planHash ?? "",
      approver: "alice",
      approve: true,
    }),
  );
  for (const id of [wide, flaky]) {
    const run = await stack.waitFor(id, undefined, { timeoutMs: 90_000 });
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  }
  const lost = await stack.waitFor(secretive, undefined, { timeoutMs: 60_000 });
  assert.equal(lost.state, RunState.FAILED);
  assert.match(lost.reason, /secrets are no longer available/);

  // Every step ran exactly once (the flaky one failed once first) and succeeded exactly once.
  assert.deepEqual((await lines(ran)).sort(), [...children, "after", "flaky"].sort());
  const counts = (
    await stack.database.query<{ step_id: string; succeeded: number }>(
      `SELECT s.step_id, count(a.*) FILTER (WHERE a.state = 'succeeded')::int AS succeeded
         FROM steps s LEFT JOIN step_attempts a ON a.run_id = s.run_id AND a.step_id = s.step_id
        WHERE s.run_id = ANY($1) AND s.kind = 'run' GROUP BY s.run_id, s.step_id`,
      [[wide, flaky]],
    )
  ).rows;
  assert.equal(counts.length, children.length + 2);
  for (const row of counts) assert.equal(row.succeeded, 1, `step ${row.step_id}`);
  await worker.close(5000);
});

test("a plan changed in the database after submission is never executed", async () => {
  const worker = await addWorker();
  const gated = `  inputs: [{name: dir, type: string}]
  approvals: [{id: release}]
  steps:
    - id: build
      run: {uses: builtin:shell, with: {script: 'echo build >> "$D/ran"', env: {D: "{{ inputs.dir }}"}}}
    - id: approve
      gate: {approval: {id: release, message: ship it?}}
    - id: deploy
      run: {uses: builtin:shell, with: {script: 'echo deploy >> "$D/ran"', env: {D: "{{ inputs.dir }}"}}}
`;
  const approve = async (runId: string) => {
    const waiting = await stack.waitFor(runId, (run) => run.state === RunState.AWAITING_APPROVAL);
    return waiting;
  };

  // 1. The stored plan text is changed after `build` ran (so this worker had verified the plan).
  const dir = await stepSharedDir("tamper-plan-");
  const id = await stack.submit(pack("tamper", gated), { inputs: { dir } });
  const waiting = await approve(id);
  const tampered = await stack.database.query(
    "UPDATE runs SET plan_json = replace(plan_json, 'echo deploy', 'echo TAMPERED') WHERE id = $1 AND plan_json LIKE '%echo deploy%'",
    [id],
  );
  assert.equal(tampered.rowCount, 1);
  await stack.client.decideApproval(
    boundApproval({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      planHash: waiting.planHash,
      approver: "alice",
      approve: true,
    }),
  );
  const run = await stack.waitFor(id);
  assert.equal(run.state, RunState.FAILED);
  assert.match(run.reason, /step "deploy" failed: plan hash mismatch/);
  const deploy = run.steps.find((step) => step.id === "deploy");
  assert.equal(deploy?.state, StepState.FAILED);
  assert.equal(deploy?.attempts.length, 1, "a plan mismatch is not retried");
  assert.deepEqual(await lines(join(dir, "ran")), ["build"]);

  // 2. The plan text is intact but a step's stored definition was changed.
  const dir2 = await stepSharedDir("tamper-step-");
  const id2 = await stack.submit(pack("tamper", gated), { inputs: { dir: dir2 } });
  const waiting2 = await approve(id2);
  const changed = await stack.database.query(
    `UPDATE steps SET planned = jsonb_set(planned, '{run,with,script}', '"echo TAMPERED >> \\"$D/ran\\""')
      WHERE run_id = $1 AND step_id = 'deploy'`,
    [id2],
  );
  assert.equal(changed.rowCount, 1);
  await stack.client.decideApproval(
    boundApproval({
      tenant: "acme",
      runId: id2,
      approvalId: "release",
      planHash: waiting2.planHash,
      approver: "alice",
      approve: true,
    }),
  );
  const run2 = await stack.waitFor(id2);
  assert.equal(run2.state, RunState.FAILED);
  assert.match(run2.reason, /differs from the step in the hashed plan/);
  assert.deepEqual(await lines(join(dir2, "ran")), ["build"]);
  await worker.close(5000);
});

test("a permanently failing step is dead-lettered in Postgres and on the queue", async () => {
  const worker = await addWorker();
  const before = (await stack.queue.depth()).deadLetter;
  const id = await stack.submit(
    pack(
      "doomed",
      `  steps:
    - id: broken
      retries: {maxAttempts: 2, backoffSeconds: 0}
      run: {uses: builtin:shell, with: {script: 'echo nope >&2; exit 7'}}
`,
    ),
  );
  const run = await stack.waitFor(id);
  assert.equal(run.state, RunState.FAILED);
  assert.deepEqual(
    (await attempts(id)).map((attempt) => attempt.state),
    ["failed", "failed"],
  );
  const dead = (
    await stack.database.query<{ step_id: string; attempt: number; reason: string }>(
      "SELECT step_id, attempt, reason FROM dead_letters WHERE run_id = $1",
      [id],
    )
  ).rows;
  assert.deepEqual(dead, [{ step_id: "broken", attempt: 2, reason: "exited with code 7" }]);
  assert.equal((await stack.queue.depth()).deadLetter, before + 1);
  const listed = (await stack.redis.client.lrange(`${stack.queueName}:dead-letter`, 0, -1)).map(
    (entry) => JSON.parse(entry) as Record<string, unknown>,
  );
  const entry = listed.find((candidate) => candidate.runId === id);
  assert.equal(entry?.stepId, "broken");
  assert.equal(entry?.attempt, 2);
  assert.equal(entry?.reason, "exited with code 7");
  await worker.close(5000);
});

test("SIGTERM drains a worker process: no new claims, the running step finishes, exit 0", async () => {
  const draining = await stack.spawnWorker({ concurrency: 1, graceMs: 20_000 });
  const busy = await stack.submit(
    pack(
      "drain-busy",
      `  steps:
    - id: slow
      run: {uses: builtin:shell, with: {script: 'sleep 2; echo "finished=yes" >> "$PACKRUN_OUTPUT"'}}
`,
    ),
  );
  await eventually(
    "the step running on the worker process",
    async () => (await stepRow(busy, "slow"))?.lease_owner === draining.workerId,
    { timeoutMs: 60_000 },
  );
  // Queued while the worker is busy; a draining worker must leave it alone.
  const next = await stack.submit(
    pack("drain-next", "  steps:\n    - id: quick\n      run: {uses: builtin:noop}\n"),
  );
  draining.child.kill("SIGTERM");
  const exit = await Promise.race([
    draining.exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("the worker did not exit within 30 s")), 30_000).unref(),
    ),
  ]);
  assert.equal(exit.code, 0, draining.stderr());
  assert.deepEqual(draining.events, ["ready", "draining", "stopped"]);

  const finished = await stack.waitFor(busy, undefined, { timeoutMs: 5000 });
  assert.equal(finished.state, RunState.SUCCEEDED, finished.reason);
  assert.deepEqual(
    (await attempts(busy)).map((attempt) => [attempt.state, attempt.worker_id]),
    [["succeeded", draining.workerId]],
  );
  assert.equal((await stepRow(next, "quick"))?.state, "pending");
  assert.deepEqual(await attempts(next), [], "the draining worker claimed nothing new");
  const status = await stack.database.query<{ status: string }>(
    "SELECT status FROM workers WHERE id = $1",
    [draining.workerId],
  );
  assert.deepEqual(status.rows, [{ status: "stopped" }]);

  const rescuer = await addWorker();
  const done = await stack.waitFor(next, undefined, { timeoutMs: 30_000 });
  assert.equal(done.state, RunState.SUCCEEDED, done.reason);
  assert.equal((await attempts(next))[0]?.worker_id, rescuer.worker?.id);
  await rescuer.close(5000);
});

test("a grace period too short hands the running step back; it finishes on another worker", async () => {
  const dir = await stepSharedDir("handback-");
  const leaving = await addWorker({ concurrency: 1 });
  const id = await stack.submit(
    pack(
      "handback",
      `  inputs: [{name: dir, type: string}]
  steps:
    - id: long
      run:
        uses: builtin:shell
        with:
          env: {D: "{{ inputs.dir }}"}
          script: 'if [ -e "$D/first" ]; then exit 0; fi; touch "$D/first"; sleep 60'
`,
    ),
    { inputs: { dir } },
  );
  await eventually(
    "the step running on the leaving worker",
    async () => (await stepRow(id, "long"))?.lease_owner === leaving.worker?.id,
    { timeoutMs: 30_000 },
  );
  const staying = await addWorker();
  const closing = Date.now();
  await leaving.close(300);
  // 0.3 s grace, then SIGTERM → 1 s → SIGKILL of the step: well under the step's 60 s.
  assert.ok(Date.now() - closing < 15_000, `close took ${Date.now() - closing} ms`);

  // Usually seconds. Under a loaded full suite the handed-back attempt once waited past 30 s
  // (seen 2026-12-06, not reproduced alone): BullMQ's stalled-job check (30 s) is the slowest
  // path that still recovers it, so the wait covers it; finding that stall is an open item.
  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  assert.deepEqual(
    (await attempts(id)).map((attempt) => [attempt.attempt, attempt.state, attempt.worker_id]),
    [
      [1, "handed-back", leaving.worker?.id],
      [2, "succeeded", staying.worker?.id],
    ],
  );
  const step = await stepRow(id, "long");
  assert.equal(step?.failed_attempts, 0, "a hand-back does not use the retry budget");
  await staying.close(5000);
});

test("a queue item whose handler failed is taken again when the reconciler re-queues it", async () => {
  const queue = createBullmqWorkQueue({
    redisUrl: stack.redis.url,
    name: `${stack.queueName}-bare`,
    prefix: stack.redis.keyPrefix.slice(0, -1),
  });
  try {
    let calls = 0;
    queue.consume(async () => {
      calls++;
      if (calls === 1) throw new Error("database unreachable");
      return { kind: "done" };
    }, 1);
    const item = {
      runId: randomUUID(),
      stepId: "s",
      tenant: "acme",
      priority: 0,
      attempt: 0,
      delayMs: 0,
    };
    await queue.enqueue([item]);
    await eventually("the first delivery", async () => calls >= 1, { timeoutMs: 15_000 });
    // What the reconciler does for a claimable step nobody took: queue the same attempt again.
    await eventually(
      "a second delivery of the re-queued item",
      async () => {
        await queue.enqueue([item]);
        return calls >= 2;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
  } finally {
    await queue.close();
  }
});

test("silent workers are declared stopped; those of this machine are reaped first", async () => {
  const reaped: string[] = [];
  const reconciler = createReconciler({
    database: stack.database,
    logger: createLogger({ service: "reconciler-test", level: "silent" }),
    enqueue: async () => {},
    workerLostAfterMs: 5000,
    reapWorker: async (workerId) => {
      reaped.push(workerId);
    },
  });
  const ids = ["local-silent", "local-alive", "remote-silent", "remote-long-gone"];
  await stack.database.query(
    `INSERT INTO workers (id, host, capacity, last_heartbeat_at) VALUES
       ('local-silent', $1, 1, now() - interval '8 seconds'),
       ('local-alive', $1, 1, now()),
       ('remote-silent', 'elsewhere.example', 1, now() - interval '8 seconds'),
       ('remote-long-gone', 'elsewhere.example', 1, now() - interval '12 seconds')`,
    [hostname()],
  );
  try {
    await reconciler.sweep();
    await reconciler.stop();
    assert.deepEqual(reaped, ["local-silent"]);
    const statuses = (
      await stack.database.query<{ id: string; status: string }>(
        "SELECT id, status FROM workers WHERE id = ANY($1) ORDER BY id",
        [ids],
      )
    ).rows;
    assert.deepEqual(statuses, [
      { id: "local-alive", status: "active" },
      { id: "local-silent", status: "stopped" },
      { id: "remote-long-gone", status: "stopped" },
      { id: "remote-silent", status: "active" },
    ]);
  } finally {
    await stack.database.query("DELETE FROM workers WHERE id = ANY($1)", [ids]);
  }
});
