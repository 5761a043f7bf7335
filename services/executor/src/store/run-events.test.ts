import assert from "node:assert/strict";
import { createPostgresDatabase, type Database, migrate } from "@packrun/db";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { executorMigrationsDir, executorSchema } from "../rpc/executor-server.ts";
import { type EventBatchRow, outboxEventsSql, type RunEvent, recordEvents } from "./run-events.ts";

// A transaction's events are one outbox row: the event itself when alone, or a batch holding
// them in order, each with its own key and time.

let testDatabase: TestDatabase;
let database: Database;
beforeAll(async () => {
  testDatabase = await createTestDatabase("run_events");
  database = createPostgresDatabase({ url: testDatabase.url, schema: executorSchema });
  await migrate(database, executorSchema, executorMigrationsDir);
});
afterAll(async () => {
  await database.close();
  await testDatabase.drop();
});

const run = { id: "7d3f2c1e-0000-4000-8000-0000000000e1", tenant: "acme" };
const event = (key: string, stepId?: string): RunEvent => ({
  type: stepId === undefined ? "run.running" : "step.succeeded",
  level: "info",
  message: key,
  idempotencyKey: `${run.id}/${key}`,
  ...(stepId === undefined ? {} : { stepId }),
});

test("one row per transaction: an event alone as itself, several as one batch in order", async () => {
  await database.transaction((tx) => recordEvents(tx, run, [event("alone")]));
  await database.transaction((tx) =>
    recordEvents(tx, run, [event("a", "build"), event("b", "test"), event("c")]),
  );
  // No events, no row.
  await database.transaction((tx) => recordEvents(tx, run, []));
  const rows = (
    await database.query<{ idempotency_key: string; event: Record<string, unknown> }>(
      "SELECT idempotency_key, event FROM outbox WHERE run_id = $1 ORDER BY id",
      [run.id],
    )
  ).rows;
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
    await database.query<{ event: { message: string } }>(
      `SELECT event FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 ORDER BY id, n`,
      [run.id],
    )
  ).rows.map((row) => row.event.message);
  assert.deepEqual(events, ["alone", "a", "b", "c"]);
});
