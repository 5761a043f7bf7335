import assert from "node:assert/strict";
import { test } from "vitest";
import { stepEvent } from "../run/step-event.ts";
import { useExecutorDatabase } from "../testing/executor-database.ts";
import {
  type EventBatchRow,
  outboxEventsSql,
  outboxInsertSql,
  outboxParameterValues,
  type RunEvent,
  recordEvents,
  stepEventSql,
} from "./run-events.ts";
import type { StepRow } from "./run-rows.ts";

// A transaction's events are one outbox row: the event itself when alone, or a batch holding
// them in order, each with its own key and time.

const executor = useExecutorDatabase("run_events");

const run = { id: "7d3f2c1e-0000-4000-8000-0000000000e1", tenant: "acme" };
const event = (key: string, stepId?: string): RunEvent => ({
  type: stepId === undefined ? "run.running" : "step.succeeded",
  level: "info",
  message: key,
  idempotencyKey: `${run.id}/${key}`,
  ...(stepId === undefined ? {} : { stepId }),
});

/** A run's outbox rows in insertion order. */
async function outboxRows(runId: string) {
  return (
    await executor.database.query<{ idempotency_key: string; event: Record<string, unknown> }>(
      "SELECT idempotency_key, event FROM outbox WHERE run_id = $1 ORDER BY id",
      [runId],
    )
  ).rows;
}

test("one row per transaction: an event alone as itself, several as one batch in order", async () => {
  await executor.database.transaction((tx) => recordEvents(tx, run, [event("alone")]));
  await executor.database.transaction((tx) =>
    recordEvents(tx, run, [event("a", "build"), event("b", "test"), event("c")]),
  );
  // No events, no row.
  await executor.database.transaction((tx) => recordEvents(tx, run, []));
  const rows = await outboxRows(run.id);
  assert.equal(rows.length, 2);
  const [alone, batch] = rows;
  assert.equal(alone?.idempotency_key, `${run.id}/alone`);
  assert.equal(alone?.event.type, "run.running");
  assert.equal(alone?.event.runId, run.id);
  assert.match(String(alone?.event.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  const stored = batch?.event as unknown as EventBatchRow;
  assert.equal(stored.type, "event.batch");
  assert.equal(stored.runId, run.id);
  assert.equal(stored.tenant, "acme");
  assert.equal(stored.idempotencyKey, batch?.idempotency_key);
  assert.match(stored.idempotencyKey, new RegExp(`^${run.id}/batch/`));
  assert.deepEqual(
    stored.events.map((each) => [each.idempotencyKey, each.stepId, each.type]),
    [
      [`${run.id}/a`, "build", "step.succeeded"],
      [`${run.id}/b`, "test", "step.succeeded"],
      [`${run.id}/c`, undefined, "run.running"],
    ],
  );
  assert.ok(stored.events.every((each) => /Z$/.test(each.time)));
  // Readers looking for events see four, in order.
  const events = (
    await executor.database.query<{ event: { message: string } }>(
      `SELECT event FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 ORDER BY id, n`,
      [run.id],
    )
  ).rows.map((row) => row.event.message);
  assert.deepEqual(events, ["alone", "a", "b", "c"]);
});

const stepRun = { id: "7d3f2c1e-0000-4000-8000-0000000000e2", tenant: "acme" };

/** Seeds a run with steps in the states the statements write events for. */
async function seedSteps(): Promise<void> {
  await executor.database.query(
    `INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, state)
     VALUES ($1, 'acme', 'p', '1.0.0', 'sha256:d', 'sha256:h', '{}', '', '{}', 'running')`,
    [stepRun.id],
  );
  await executor.database.query(
    `INSERT INTO steps (run_id, step_id, tenant, position, kind, planned, state, attempt, fence, reason, exit_code, next_attempt_at)
     VALUES ($1, 'ok', 'acme', 0, 'run', '{}', 'succeeded', 1, 1, '', 0, NULL),
            ($1, 'broke', 'acme', 1, 'run', '{}', 'failed', 3, 4, 'exit 3', 3, NULL),
            ($1, 'stopped', 'acme', 2, 'run', '{}', 'cancelled', 1, 2, 'run cancelled: by alice', NULL, NULL),
            ($1, 'late', 'acme', 3, 'run', '{}', 'timed_out', 2, 2, '', NULL, NULL),
            ($1, 'retry', 'acme', 4, 'run', '{}', 'pending', 1, 1, 'attempt 1 failed; retrying', 1,
             '2026-03-04 05:06:07.891234+00'),
            ($1, 'fresh', 'acme', 5, 'run', '{}', 'pending', 0, 0, '', NULL, NULL)`,
    [stepRun.id],
  );
}

test("stepEventSql makes the event stepEvent makes, for every kind of step row", async () => {
  await seedSteps();
  const rows = (
    await executor.database.query<StepRow & { changed: RunEvent; readied: RunEvent }>(
      `SELECT s.*, ${stepEventSql("s", "'running'")} AS changed, ${stepEventSql("s", "'pending'", "ready")} AS readied
         FROM steps s WHERE run_id = $1 ORDER BY position`,
      [stepRun.id],
    )
  ).rows;
  assert.equal(rows.length, 6);
  for (const { changed, readied, ...step } of rows) {
    // Stored events are JSON: a Date in the JS event becomes its ISO text.
    const json = (event: RunEvent) => JSON.parse(JSON.stringify(event)) as unknown;
    assert.deepEqual(changed, json(stepEvent(step, "running")), step.step_id);
    assert.deepEqual(readied, json(stepEvent(step, "pending", "ready")), step.step_id);
  }
  const retry = rows.find((row) => row.step_id === "retry");
  assert.equal(retry?.changed.metadata?.nextAttemptAt, "2026-03-04T05:06:07.891Z");
  assert.equal(rows.find((row) => row.step_id === "broke")?.changed.level, "error");
  assert.equal(rows.find((row) => row.step_id === "stopped")?.changed.level, "info");
});

test("outboxInsertSql writes one row as recordEvents does: known events, then derived ones", async () => {
  await executor.database.query("DELETE FROM outbox");
  const statement = (derived: string) =>
    `WITH events AS (${outboxInsertSql({ run: 1, tenant: 2, known: 3, batchKey: 4 }, derived)}) SELECT 1`;
  const noDerived = "SELECT 1 AS n, '{}'::jsonb AS event WHERE false";
  // Nothing at all: no row.
  await executor.database.query(statement(noDerived), outboxParameterValues(stepRun, []));
  // One known event alone: the event itself under its own key, with the run's identity.
  await executor.database.query(
    statement(noDerived),
    outboxParameterValues(stepRun, [event("solo")]),
  );
  // Known events and two derived ones: one batch, known first, derived in their order.
  await executor.database.query(
    statement(
      `SELECT 2 AS n, jsonb_build_object('type', 'step.ready', 'message', 'second', 'idempotencyKey', 'k2') AS event
       UNION ALL SELECT 1, jsonb_build_object('type', 'step.succeeded', 'message', 'first', 'idempotencyKey', 'k1')`,
    ),
    outboxParameterValues(stepRun, [event("x"), event("y")]),
  );
  const rows = await outboxRows(stepRun.id);
  assert.equal(rows.length, 2);
  const [solo, batch] = rows;
  assert.equal(solo?.idempotency_key, `${run.id}/solo`);
  assert.equal(solo?.event.runId, stepRun.id);
  assert.equal(solo?.event.tenant, "acme");
  assert.equal(solo?.event.message, "solo");
  assert.match(String(solo?.event.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  const stored = batch?.event as unknown as EventBatchRow;
  assert.equal(stored.type, "event.batch");
  assert.equal(stored.idempotencyKey, batch?.idempotency_key);
  assert.match(stored.idempotencyKey, new RegExp(`^${stepRun.id}/batch/`));
  assert.deepEqual(
    stored.events.map((each) => each.message),
    ["x", "y", "first", "second"],
  );
  assert.ok(stored.events.every((each) => /Z$/.test(each.time)));
  // A resent single event (same key) is not written twice.
  await executor.database.query(
    statement(noDerived),
    outboxParameterValues(stepRun, [event("solo")]),
  );
  assert.equal(
    (await executor.database.query("SELECT 1 FROM outbox WHERE run_id = $1", [stepRun.id]))
      .rowCount,
    2,
  );
});
