/**
 * Issue 8, item 10: a worker whose wall clock is an hour ahead (or behind) still retries on
 * time, because retry scheduling uses the database's clock: `next_attempt_at = now() + delay`
 * in Postgres, and a claim only checks `ready_at <= now()` there.
 *
 * The worker process gets a preload (support/skewed-clock.ts) that shifts Date.now() and
 * new Date() by the skew; its timers are unaffected, as on a machine with a wrong clock.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { RunState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
  type WorkerProcess,
} from "../../services/executor/src/testing/executor-stack.ts";

const preload = new URL("./support/skewed-clock.ts", import.meta.url).pathname;
const hour = 3600_000;

let stack: ExecutorStack;
let dir: string;
beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  dir = await stepSharedDir("packrun-clock-skew-");
});
afterAll(async () => {
  await stack.close();
  await rm(dir, { recursive: true, force: true });
});

/** A worker process whose wall clock is off by `skewMs`. */
async function skewedWorker(skewMs: number): Promise<WorkerProcess> {
  const saved = { options: process.env.NODE_OPTIONS, skew: process.env.PACKRUN_TEST_CLOCK_SKEW_MS };
  process.env.NODE_OPTIONS = `${saved.options ?? ""} --import ${preload}`.trim();
  process.env.PACKRUN_TEST_CLOCK_SKEW_MS = String(skewMs);
  try {
    return await stack.spawnWorker({ concurrency: 2, leaseMs: 10_000 });
  } finally {
    if (saved.options === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved.options;
    if (saved.skew === undefined) delete process.env.PACKRUN_TEST_CLOCK_SKEW_MS;
    else process.env.PACKRUN_TEST_CLOCK_SKEW_MS = saved.skew;
  }
}

const flaky = packManifest(
  "flaky",
  `  inputs: [{name: dir, type: string}]
  failure: {retries: {maxAttempts: 3, backoffSeconds: 1}}
  steps:
    - id: flaky
      run: {uses: builtin:shell, with: {env: {D: "{{ inputs.dir }}"}, argv: [sh, -c, 'if [ -e "$D/failed-once" ]; then echo ok; else touch "$D/failed-once"; exit 1; fi']}}
`,
);

for (const skewMs of [hour, -hour]) {
  test(`a worker ${skewMs > 0 ? "an hour ahead" : "an hour behind"} retries after the 1 s backoff, on time`, async () => {
    const worker = await skewedWorker(skewMs);
    try {
      const runDir = await stepSharedDir("run-", dir);
      const submittedAt = Date.now();
      const id = await stack.submit(flaky, { inputs: { dir: runDir } });
      const run = await stack.waitFor(id, undefined, { timeoutMs: 20_000 });
      assert.equal(run.state, RunState.SUCCEEDED, run.reason);
      const attempts = await stack.database.query<{
        attempt: number;
        state: string;
        worker_id: string;
        started_at: Date;
        finished_at: Date;
      }>(
        "SELECT attempt, state, worker_id, started_at, finished_at FROM step_attempts WHERE run_id = $1 ORDER BY attempt",
        [id],
      );
      const [first, second, ...more] = attempts.rows;
      assert.equal(more.length, 0);
      assert.equal(first?.state, "failed");
      assert.equal(second?.state, "succeeded");
      assert.equal(first?.worker_id, worker.workerId, "the skewed worker ran it");
      const waitedMs = (second?.started_at.getTime() ?? 0) - (first?.finished_at.getTime() ?? 0);
      assert.ok(waitedMs >= 900, `retried after ${waitedMs} ms, before its backoff`);
      assert.ok(waitedMs < 3000, `retried after ${waitedMs} ms`);
      // The skew was real: the worker stamps its output lines with its own (wrong) clock.
      const line = await stack.database.query<{ time: string }>(
        `SELECT l->>'time' AS time FROM outbox o CROSS JOIN LATERAL jsonb_array_elements(o.event->'lines') AS l
          WHERE o.run_id = $1 AND l->>'type' = 'log.stdout'`,
        [id],
      );
      const lineSkew = Date.parse(line.rows[0]?.time ?? "") - (second?.started_at.getTime() ?? 0);
      assert.ok(Math.abs(lineSkew - skewMs) < 60_000, `output line stamped ${lineSkew} ms off`);
      // Times recorded are the database's, not the worker's skewed clock.
      assert.ok(
        Math.abs((first?.started_at.getTime() ?? 0) - submittedAt) < 10_000,
        `attempt recorded at ${first?.started_at.toISOString()}`,
      );
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  });
}
