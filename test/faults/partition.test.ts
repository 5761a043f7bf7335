/**
 * Issue 8, item 6, with a real network cut: a worker PROCESS reaches Postgres and Redis through
 * TCP fault proxies; mid-step, both are cut for longer than its lease. Checked: the cut-off
 * worker kills its own step once its lease has run out without a successful heartbeat (it
 * cannot know whether another worker took over, so it must not go on acting); another worker
 * runs the step meanwhile; when the network comes back, the first worker's late result is
 * rejected (fencing) and the step succeeded exactly once.
 *
 * (services/executor/src/executor-faults.test.ts covers the fencing itself with an in-process
 * worker whose database calls fail.)
 */
import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { RunState } from "@packrun/proto/executor/v1";
import { readTestEnv, stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
} from "../../services/executor/src/testing/executor-stack.ts";
import {
  eventually,
  processesWithMarker,
  uniqueMarker,
} from "../../services/executor/src/testing/processes.ts";
import { startTcpProxy, type TcpProxy } from "../../services/executor/src/testing/tcp-proxy.ts";
import { type ServiceProcess, startExecutorProcess } from "./support/children.ts";

const leaseMs = 2000;
let stack: ExecutorStack;
let dir: string;
let pgProxy: TcpProxy;
let redisProxy: TcpProxy;
let worker: ServiceProcess | undefined;

beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  dir = await stepSharedDir("packrun-partition-");
  const database = new URL(stack.databaseUrl);
  const redis = new URL(readTestEnv().redisUrl);
  pgProxy = await startTcpProxy({ host: database.hostname, port: Number(database.port) });
  redisProxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port) });
  const viaProxy = new URL(stack.databaseUrl);
  viaProxy.port = String(pgProxy.port);
  worker = await startExecutorProcess(stack, {
    workerId: "partitioned-process",
    leaseMs,
    databaseUrl: viaProxy.toString(),
    redisUrl: `redis://127.0.0.1:${redisProxy.port}`,
  });
});
afterAll(async () => {
  await pgProxy.up().catch(() => {});
  await redisProxy.up().catch(() => {});
  await worker?.kill();
  await stack.close();
  await pgProxy.close();
  await redisProxy.close();
  await rm(dir, { recursive: true, force: true });
});

test("a worker cut off from Postgres and Redis beyond its lease stops its step; the step runs elsewhere once; the late result is fenced", async () => {
  const marker = uniqueMarker();
  const id = await stack.submit(
    packManifest(
      "partition",
      `  inputs: [{name: dir, type: string}, {name: marker, type: string}]
  steps:
    - id: work
      run:
        uses: builtin:shell
        with:
          env: {D: "{{ inputs.dir }}", M: "{{ inputs.marker }}"}
          script: |
            echo "attempt by $(cat /proc/sys/kernel/hostname)" >> "$D/attempts"
            if [ -e "$D/first" ]; then echo "by=rescuer" >> "$PACKRUN_OUTPUT"; exit 0; fi
            touch "$D/first"
            sh -c 'sleep 300; :' "$M"
            echo "by=partitioned" >> "$PACKRUN_OUTPUT"
`,
    ),
    { inputs: { dir, marker } },
  );
  await eventually(
    "the step running on the soon-partitioned worker",
    async () => (await processesWithMarker(marker)).length === 1,
    { timeoutMs: 30_000 },
  );
  const cutAt = Date.now();
  await pgProxy.down();
  await redisProxy.down();
  try {
    // The worker notices its lease ran out (2 s) and kills the step (grace 1 s) by itself.
    await eventually(
      "the partitioned worker to kill its step",
      async () => (await processesWithMarker(marker)).length === 0,
      { timeoutMs: 15_000 },
    );
    const killedAfterMs = Date.now() - cutAt;
    // Well before the test stack's reconciler would declare the silent worker lost (10 s) and
    // reap its processes from this machine: on another machine nothing would reap them.
    assert.ok(killedAfterMs < 7000, `killed ${killedAfterMs} ms after the cut`);
    // Meanwhile a worker that can reach everything takes the step over.
    const rescuer = await stack.addExecutor({
      serve: false,
      worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 2 },
    });
    const run = await stack.waitFor(id, undefined, { timeoutMs: 30_000 });
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    await rescuer.close(5000);
  } finally {
    await pgProxy.up();
    await redisProxy.up();
  }
  // Give the partitioned worker time to reconnect and try to record its result.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const step = (
    await stack.database.query<{ state: string; outputs: Record<string, string>; lost: number }>(
      "SELECT state, outputs, lost_attempts AS lost FROM steps WHERE run_id = $1 AND step_id = 'work'",
      [id],
    )
  ).rows[0];
  assert.equal(step?.state, "succeeded");
  assert.deepEqual(step?.outputs, { by: "rescuer" }, "the partitioned attempt recorded nothing");
  const attempts = await stack.database.query<{ state: string; worker_id: string }>(
    "SELECT state, worker_id FROM step_attempts WHERE run_id = $1 ORDER BY attempt",
    [id],
  );
  assert.equal(attempts.rows.filter((a) => a.state === "succeeded").length, 1);
  assert.equal(attempts.rows[0]?.worker_id, "partitioned-process");
  assert.notEqual(attempts.rows[0]?.state, "succeeded");
  assert.equal((await readFile(join(dir, "attempts"), "utf8")).trim().split("\n").length, 2);
});
