import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { type GetRunStatisticsResponse, RunState, StepState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";
import { createBullmqWorkQueue } from "../worker/bullmq-work-queue.ts";
import { createMemoryWorkQueue } from "../worker/memory-work-queue.ts";
import type { WorkQueue } from "../worker/work-queue.ts";
import {
  attemptCpuBuckets,
  attemptDurationBuckets,
  attemptMemoryBuckets,
} from "./run-statistics.ts";

// This file's stack has a database of its own, so the cluster-wide counts are this file's.
let stack: ExecutorStack;
beforeAll(async () => {
  stack = await startExecutorStack();
});
afterAll(() => stack.close());

const runCount = (stats: GetRunStatisticsResponse, state: RunState) =>
  stats.runsByState.find((each) => each.state === state)?.count;
const stepCount = (stats: GetRunStatisticsResponse, state: StepState) =>
  stats.stepsByState.find((each) => each.state === state)?.count;

test("GetRunStatistics counts runs, steps, retries and attempt durations; every state is present", async () => {
  const empty = await stack.client.getRunStatistics({});
  assert.deepEqual(
    empty.runsByState.map((each) => [each.state, each.count]),
    [
      RunState.QUEUED,
      RunState.RUNNING,
      RunState.AWAITING_APPROVAL,
      RunState.SUCCEEDED,
      RunState.FAILED,
      RunState.CANCELLED,
      RunState.TIMED_OUT,
    ].map((state) => [state, 0n]),
  );
  assert.equal(empty.stepsByState.length, 10);
  assert.ok(empty.stepsByState.every((each) => each.count === 0n));
  assert.equal(empty.retriesTotal, 0n);
  assert.equal(empty.stepAttemptDurations?.count, 0n);
  assert.equal(empty.stepAttemptDurations?.sumSeconds, 0);
  assert.deepEqual(
    empty.stepAttemptDurations?.buckets.map((bucket) => [
      bucket.upperBound,
      bucket.cumulativeCount,
    ]),
    attemptDurationBuckets.map((bound) => [bound, 0n]),
  );
  assert.equal(empty.queueAvailable, true);
  assert.equal(empty.stepAttemptCpuSeconds?.count, 0n);
  assert.equal(empty.stepAttemptPeakMemoryBytes?.count, 0n);
  assert.equal(empty.stepAttemptPeakMemoryBytes?.buckets.length, attemptMemoryBuckets.length);

  const counter = join(await stepSharedDir("packrun-stats-"), "count");
  // Fails once, then succeeds: one retry.
  const flaky = await stack.submit(
    packManifest(
      "flaky",
      `  inputs: [{name: counter, type: string}]
  steps:
    - id: flaky
      retries: {maxAttempts: 3, backoffSeconds: 0.1}
      run:
        uses: builtin:shell
        with:
          script: 'n=$(cat "$C" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$C"; sleep 0.3; [ $n -ge 2 ]'
          env: {C: "{{ inputs.counter }}"}
    - id: after
      run: {uses: builtin:noop}
`,
    ),
    { inputs: { counter } },
  );
  const failing = await stack.submit(
    packManifest(
      "failing",
      "  steps:\n    - id: bad\n      run: {uses: builtin:shell, with: {argv: ['false']}}\n",
    ),
  );
  const gated = await stack.submit(
    packManifest(
      "waits",
      "  approvals: [{id: go}]\n  steps:\n    - id: gate\n      gate: {approval: {id: go}}\n",
    ),
  );
  const flakyRun = await stack.waitFor(flaky);
  assert.equal(flakyRun.state, RunState.SUCCEEDED, flakyRun.reason);
  assert.equal(flakyRun.steps[0]?.attempts.length, 2);
  assert.equal((await stack.waitFor(failing)).state, RunState.FAILED);
  await stack.waitFor(gated, (run) => run.state === RunState.AWAITING_APPROVAL);
  // A retry far in the future is "delayed" on the queue (no run behind it: dropped when due).
  await stack.queue.enqueue([
    {
      runId: randomUUID(),
      stepId: "future",
      tenant: "acme",
      priority: 0,
      attempt: 0,
      delayMs: 10 * 60_000,
    },
  ]);

  const stats = await stack.client.getRunStatistics({});
  assert.equal(runCount(stats, RunState.SUCCEEDED), 1n);
  assert.equal(runCount(stats, RunState.FAILED), 1n);
  assert.equal(runCount(stats, RunState.AWAITING_APPROVAL), 1n);
  assert.equal(runCount(stats, RunState.QUEUED), 0n);
  assert.equal(stats.runsByState.length, 7);
  // flaky + after succeeded; bad failed; the gate awaits approval.
  assert.equal(stepCount(stats, StepState.SUCCEEDED), 2n);
  assert.equal(stepCount(stats, StepState.FAILED), 1n);
  assert.equal(stepCount(stats, StepState.AWAITING_APPROVAL), 1n);
  assert.equal(stepCount(stats, StepState.PENDING), 0n);
  assert.equal(stats.stepsByState.length, 10);
  assert.ok(stats.retriesTotal >= 1n, `retries ${stats.retriesTotal}`);
  assert.equal(stats.retriesTotal, 1n);

  // The histogram agrees with the attempts themselves.
  const histogram = stats.stepAttemptDurations;
  const attempts = (
    await stack.database.query<{ seconds: number }>(
      "SELECT extract(epoch FROM finished_at - started_at)::float8 AS seconds FROM step_attempts WHERE finished_at IS NOT NULL",
    )
  ).rows.map((row) => row.seconds);
  // flaky (2 attempts), after, bad.
  assert.equal(attempts.length, 4);
  assert.equal(histogram?.count, 4n);
  const sum = attempts.reduce((total, seconds) => total + seconds, 0);
  assert.ok(
    Math.abs((histogram?.sumSeconds ?? 0) - sum) < 1e-6,
    `${histogram?.sumSeconds} vs ${sum}`,
  );
  assert.ok((histogram?.sumSeconds ?? 0) >= 0.6, "the two flaky attempts slept 0.3 s each");
  assert.deepEqual(
    histogram?.buckets.map((bucket) => [bucket.upperBound, bucket.cumulativeCount]),
    attemptDurationBuckets.map((bound) => [
      bound,
      BigInt(attempts.filter((seconds) => seconds <= bound).length),
    ]),
  );
  assert.equal(histogram?.buckets.at(-1)?.cumulativeCount, 4n);

  // CPU time and peak memory: the same attempts as the run record holds them (measured ones).
  const measured = (
    await stack.database.query<{ cpu: number; memory: number }>(
      `SELECT coalesce(cpu_micros, 0) / 1e6::float8 AS cpu, peak_memory_bytes::float8 AS memory
         FROM step_attempts WHERE finished_at IS NOT NULL AND coalesce(peak_memory_bytes, 0) > 0`,
    )
  ).rows;
  assert.ok(measured.length >= 3, `${measured.length} measured attempts`);
  const cpu = stats.stepAttemptCpuSeconds;
  const memory = stats.stepAttemptPeakMemoryBytes;
  assert.equal(cpu?.count, BigInt(measured.length));
  assert.equal(memory?.count, BigInt(measured.length));
  const cpuSum = measured.reduce((total, row) => total + Number(row.cpu), 0);
  const memorySum = measured.reduce((total, row) => total + Number(row.memory), 0);
  assert.ok(Math.abs((cpu?.sumSeconds ?? 0) - cpuSum) < 1e-6, `${cpu?.sumSeconds} vs ${cpuSum}`);
  assert.ok(Math.abs((memory?.sum ?? 0) - memorySum) < 1, `${memory?.sum} vs ${memorySum}`);
  assert.ok(memorySum > 0);
  assert.deepEqual(
    cpu?.buckets.map((bucket) => [bucket.upperBound, bucket.cumulativeCount]),
    attemptCpuBuckets.map((bound) => [
      bound,
      BigInt(measured.filter((row) => Number(row.cpu) <= bound).length),
    ]),
  );
  assert.deepEqual(
    memory?.buckets.map((bucket) => [bucket.upperBound, bucket.cumulativeCount]),
    attemptMemoryBuckets.map((bound) => [
      bound,
      BigInt(measured.filter((row) => Number(row.memory) <= bound).length),
    ]),
  );

  assert.equal(stats.queueAvailable, true);
  assert.ok(stats.queueDelayed >= 1n, `delayed ${stats.queueDelayed}`);

  // Counts move with the runs.
  await stack.client.cancelRun({ tenant: "acme", runId: gated, reason: "enough" });
  const later = await stack.client.getRunStatistics({});
  assert.equal(runCount(later, RunState.AWAITING_APPROVAL), 0n);
  assert.equal(runCount(later, RunState.CANCELLED), 1n);
  assert.equal(stepCount(later, StepState.AWAITING_APPROVAL), 0n);
  assert.equal(stepCount(later, StepState.CANCELLED), 1n);
});

for (const [label, make] of [
  ["memory", () => createMemoryWorkQueue()],
  [
    "BullMQ",
    () =>
      createBullmqWorkQueue({
        redisUrl: stack.redis.url,
        name: `depth-${randomUUID().slice(0, 8)}`,
        prefix: stack.redis.keyPrefix.slice(0, -1),
      }),
  ],
] as const) {
  test(`the ${label} work queue reports waiting and delayed items`, async () => {
    const queue: WorkQueue = make();
    try {
      const item = { tenant: "acme", priority: 0, attempt: 0, runId: randomUUID() };
      await queue.enqueue([
        { ...item, stepId: "a", delayMs: 0 },
        { ...item, stepId: "b", delayMs: 0, priority: 5 },
        { ...item, stepId: "c", delayMs: 60_000 },
      ]);
      const depth = await queue.depth();
      assert.deepEqual(
        { waiting: depth.waiting, delayed: depth.delayed, active: depth.active },
        { waiting: 2, delayed: 1, active: 0 },
      );
    } finally {
      await queue.close();
    }
  });
}
