import assert from "node:assert/strict";
import { test } from "vitest";
import { stepEvent } from "../run/scheduler.ts";
import { useExecutorDatabase } from "../testing/executor-database.ts";
import { claimStep } from "./claim-step.ts";

const executor = useExecutorDatabase("claim");

const runId = "7d3f2c1e-0000-4000-8000-000000000001";
const planJson = '{"steps":[]}';

async function seed(step: { reason: string; exitCode: number | null; attempt: number }) {
  await executor.database.query(
    `INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs, state)
     VALUES ($1, 'acme', 'p', '1.0.0', 'sha256:d', 'sha256:' || encode(sha256(convert_to($2::text, 'UTF8')), 'hex'), $2, '', '{}', 'running')`,
    [runId, planJson],
  );
  await executor.database.query(
    `INSERT INTO steps (run_id, step_id, tenant, position, kind, planned, ready_at, attempt, fence, failed_attempts, reason, exit_code)
     VALUES ($1, 'build', 'acme', 0, 'run', '{}', now(), $2::int, $2::int, $2::int, $3, $4)`,
    [runId, step.attempt, step.reason, step.exitCode],
  );
}

test("a claim records exactly the event stepEvent makes for pending → running, once", async () => {
  // A retry: the step carries the previous attempt's reason and exit code into its claim.
  await seed({ reason: "attempt 1 failed: exit 3; retrying in 1s", exitCode: 3, attempt: 1 });
  const claimed = await claimStep(
    executor.database,
    { runId, stepId: "build" },
    "worker-a",
    15_000,
  );
  assert.ok(claimed !== undefined);
  assert.equal(claimed.step.state, "running");
  assert.equal(claimed.step.attempt, 2);
  assert.equal(claimed.fence, 2);
  assert.equal(claimed.step.lease_owner, "worker-a");
  assert.equal(claimed.run.id, runId);
  assert.equal(claimed.run.tenant, "acme");
  assert.ok(claimed.run.created_at instanceof Date, "run columns keep their types");
  assert.equal(claimed.storedPlanHash, claimed.run.plan_hash);

  const outbox = (
    await executor.database.query<{ idempotency_key: string; event: Record<string, unknown> }>(
      "SELECT idempotency_key, event FROM outbox WHERE run_id = $1",
      [runId],
    )
  ).rows;
  assert.equal(outbox.length, 1);
  const { time, runId: eventRunId, tenant, ...event } = outbox[0]?.event ?? {};
  assert.match(String(time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.equal(eventRunId, runId);
  assert.equal(tenant, "acme");
  assert.deepEqual(event, stepEvent(claimed.step, "pending"));
  assert.equal(outbox[0]?.idempotency_key, `${runId}/build/running/2/2`);

  const attempts = (
    await executor.database.query("SELECT attempt, state, worker_id, fence FROM step_attempts")
  ).rows;
  assert.deepEqual(attempts, [{ attempt: 2, state: "running", worker_id: "worker-a", fence: 2 }]);

  // Running now: a second claim of the same item finds nothing to take.
  assert.equal(
    await claimStep(executor.database, { runId, stepId: "build" }, "worker-b", 15_000),
    undefined,
  );

  // A first attempt without a previous reason gets the plain message and no exit code.
  await executor.database.query("DELETE FROM runs");
  await executor.database.query("DELETE FROM outbox");
  await seed({ reason: "", exitCode: null, attempt: 0 });
  const first = await claimStep(executor.database, { runId, stepId: "build" }, "worker-a", 15_000);
  assert.ok(first !== undefined);
  const row = (
    await executor.database.query<{ event: Record<string, unknown> }>("SELECT event FROM outbox")
  ).rows[0];
  const { time: _t, runId: _r, tenant: _n, ...plain } = row?.event ?? {};
  assert.deepEqual(plain, stepEvent(first.step, "pending"));
});

test("a step of a run that is no longer active is not claimed", async () => {
  await executor.database.query("DELETE FROM runs");
  await seed({ reason: "", exitCode: null, attempt: 0 });
  await executor.database.query("UPDATE runs SET state = 'cancelled' WHERE id = $1", [runId]);
  assert.equal(
    await claimStep(executor.database, { runId, stepId: "build" }, "worker-a", 15_000),
    undefined,
  );
  assert.equal((await executor.database.query("SELECT 1 FROM step_attempts")).rowCount, 0);
});
