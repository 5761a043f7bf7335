import assert from "node:assert/strict";
import { beforeEach, test } from "vitest";
import type { StepChange } from "../run/step-change.ts";
import { useExecutorDatabase } from "../testing/executor-database.ts";
import type { RunEvent } from "./run-events.ts";
import { updateStepAndReadyNext } from "./step-store.ts";

// A top-level step's end in one statement: the step, the next step's readiness and, for the
// last step of a running run without outputs, the run's success, settled only when no other
// step of the run still runs; the transaction's events in one outbox row.

const executor = useExecutorDatabase("step_store");
beforeEach(async () => {
  await executor.database.query("DELETE FROM outbox");
  await executor.database.query("DELETE FROM runs");
});

const run = { id: "7d3f2c1e-0000-4000-8000-0000000000f1", tenant: "acme" };
const succeeded: StepChange = { to: "succeeded", finished: true, releaseLease: true };
const settledEvent: RunEvent = {
  type: "run.succeeded",
  level: "info",
  message: "run succeeded",
  metadata: { state: "succeeded" },
  idempotencyKey: `${run.id}/run/succeeded`,
};

/** A running run whose top-level steps are in the given states, in position order. */
async function seed(states: readonly string[]): Promise<void> {
  await executor.database.query(
    `INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, state)
     VALUES ($1, 'acme', 'p', '1.0.0', 'sha256:d', 'sha256:h', '{"steps":[]}', '', '{}', 'running')`,
    [run.id],
  );
  for (const [position, state] of states.entries())
    await executor.database.query(
      `INSERT INTO steps (run_id, step_id, tenant, position, kind, planned, state, attempt, fence)
       VALUES ($1, $2, 'acme', $3, 'run', '{"enabled": true}', $4, 1, 1)`,
      [run.id, `s${position}`, position, state],
    );
}

async function endStep(stepId: string, finishRunIfLast: boolean) {
  return executor.database.transaction((tx) =>
    updateStepAndReadyNext(
      tx,
      { run_id: run.id, step_id: stepId, state: "running" },
      succeeded,
      true,
      finishRunIfLast,
      { run, known: [], settled: settledEvent },
    ),
  );
}

async function runRow() {
  return (
    await executor.database.query<{ state: string; settled: boolean; finished: boolean }>(
      "SELECT state, settled_at IS NOT NULL AS settled, finished_at IS NOT NULL AS finished FROM runs WHERE id = $1",
      [run.id],
    )
  ).rows[0];
}

/** The types of the events in the run's outbox, in order. */
async function outboxTypes(): Promise<string[]> {
  const rows = (
    await executor.database.query<{ event: { type: string; events?: { type: string }[] } }>(
      "SELECT event FROM outbox WHERE run_id = $1 ORDER BY id",
      [run.id],
    )
  ).rows;
  return rows.flatMap(({ event }) => event.events?.map((e) => e.type) ?? [event.type]);
}

test("the last step's end succeeds and settles the run, with the run's terminal event", async () => {
  await seed(["running"]);
  const ended = await endStep("s0", true);
  assert.equal(ended.done?.state, "succeeded");
  assert.equal(ended.last, true);
  assert.deepEqual(ended.runEnded, { settled: true });
  assert.deepEqual(await runRow(), { state: "succeeded", settled: true, finished: true });
  assert.deepEqual(await outboxTypes(), ["step.succeeded", "run.succeeded"]);
});

test("with another step still running the run succeeds but does not settle, and its terminal event waits", async () => {
  // s1 is the last top-level step; s0 still runs (e.g. a step a worker has not yet reported).
  await seed(["running", "running"]);
  const ended = await endStep("s1", true);
  assert.equal(ended.last, true);
  assert.deepEqual(ended.runEnded, { settled: false });
  assert.deepEqual(await runRow(), { state: "succeeded", settled: false, finished: true });
  assert.deepEqual(await outboxTypes(), ["step.succeeded"]);
});

test("without finishRunIfLast (a run with outputs to evaluate) the run is left to the caller", async () => {
  await seed(["running"]);
  const ended = await endStep("s0", false);
  assert.equal(ended.last, true);
  assert.equal(ended.runEnded, undefined);
  assert.deepEqual(await runRow(), { state: "running", settled: false, finished: false });
  assert.deepEqual(await outboxTypes(), ["step.succeeded"]);
});

test("a step with a next one readies it in the same statement and does not end the run", async () => {
  await seed(["running", "pending"]);
  const ended = await endStep("s0", true);
  assert.equal(ended.last, false);
  assert.equal(ended.runEnded, undefined);
  assert.equal(ended.next?.step_id, "s1");
  assert.deepEqual(await runRow(), { state: "running", settled: false, finished: false });
  assert.deepEqual(await outboxTypes(), ["step.succeeded", "step.ready"]);
});
