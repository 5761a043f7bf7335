import assert from "node:assert/strict";
import { RunState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";

// The block counters of migration 010 (kept by a trigger) must always equal what counting the
// children says: the block rule decides on them.

let stack: ExecutorStack;
beforeAll(async () => {
  stack = await startExecutorStack();
});
afterAll(() => stack.close());

/** Each block's counters as kept, and as counting its children says they should be. */
async function blockCounters(runId: string): Promise<{ kept: unknown[]; counted: unknown[] }> {
  const counted = (
    await stack.database.query(
      `SELECT parent_id AS block_id, count(*)::int AS total,
              count(*) FILTER (WHERE state = 'pending' AND ready_at IS NULL)::int AS waiting,
              count(*) FILTER (WHERE state IN ('running', 'awaiting-approval') OR (state = 'pending' AND ready_at IS NOT NULL))::int AS active,
              count(*) FILTER (WHERE state IN ('failed', 'timed_out', 'rejected', 'expired', 'cancelled'))::int AS failed
         FROM steps WHERE run_id = $1 AND parent_id IS NOT NULL GROUP BY parent_id ORDER BY parent_id`,
      [runId],
    )
  ).rows;
  const kept = (
    await stack.database.query(
      "SELECT block_id, total, waiting, active, failed FROM block_children WHERE run_id = $1 ORDER BY block_id",
      [runId],
    )
  ).rows;
  return { kept, counted };
}

test("block counters match their children through nesting, failures, skips and a cancel", async () => {
  const children = [1, 2, 3, 4, 5]
    .map(
      (n) =>
        `          - id: c${n}\n            run: {uses: builtin:shell, with: {argv: [sh, -c, '[ ${n} -ne 3 ]']}}`,
    )
    .join("\n");
  const finished = await stack.submit(
    packManifest(
      "counted",
      `  steps:
    - id: tolerant
      parallel:
        maxParallel: 2
        continueOnError: true
        steps:
${children}
    - id: outer
      parallel:
        steps:
          - id: inner
            parallel:
              maxParallel: 1
              steps:
                - id: fails
                  run: {uses: builtin:shell, with: {argv: ["false"]}}
                - id: skipped
                  run: {uses: builtin:noop}
          - id: sibling
            run: {uses: builtin:noop}
    - id: never
      run: {uses: builtin:noop}
`,
    ),
  );
  const run = await stack.waitFor(finished);
  assert.equal(run.state, RunState.FAILED, run.reason);
  const { kept, counted } = await blockCounters(finished);
  assert.deepEqual(kept, counted);
  assert.deepEqual(kept, [
    { block_id: "inner", total: 2, waiting: 0, active: 0, failed: 1 },
    { block_id: "outer", total: 2, waiting: 0, active: 0, failed: 1 },
    { block_id: "tolerant", total: 5, waiting: 0, active: 0, failed: 1 },
  ]);

  const cancelled = await stack.submit(
    packManifest(
      "cancelled-block",
      `  steps:
    - id: slow
      parallel:
        maxParallel: 1
        steps:
          - id: a
            run: {uses: builtin:shell, with: {argv: [sleep, "5"]}}
          - id: b
            run: {uses: builtin:noop}
`,
    ),
  );
  await stack.waitFor(cancelled, (view) => view.steps.some((step) => step.state === 2));
  await stack.client.cancelRun({ tenant: "acme", runId: cancelled, reason: "test" });
  const ended = await stack.waitFor(cancelled);
  assert.equal(ended.state, RunState.CANCELLED);
  const afterCancel = await blockCounters(cancelled);
  assert.deepEqual(afterCancel.kept, afterCancel.counted);
  assert.equal(afterCancel.kept.length, 1);
});
