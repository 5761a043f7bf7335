import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, test } from "vitest";
import { countingDatabase, statementsOfRun } from "../testing/counting-database.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";
import { outboxEventsSql, type RunEvent } from "./run-events.ts";

// The executor's round trips for one 3-step run, counted on its database handle (every
// statement naming the run, with the BEGIN and COMMIT of its transactions), so that the hot
// path's cost cannot creep back unnoticed. Reads by watchers and sweeps that find nothing to do
// do not name the run and are not counted; the test follows the run on the raw handle.

/** Statements of a submitted 3-step run through to its settlement (measured: 20). */
const maxStatementsPerRun = 20;

let stack: ExecutorStack;
let counter: ReturnType<typeof countingDatabase>;
beforeAll(async () => {
  stack = await startExecutorStack(
    {},
    {
      wrapDatabase: (database) => {
        counter = countingDatabase(database);
        return counter;
      },
    },
  );
});
afterAll(() => stack.close());

test("a 3-step run costs the executor a bounded number of statements", async () => {
  const manifest = packManifest(
    "three-noops",
    "  steps:\n    - id: a\n      run: {uses: builtin:noop}\n    - id: b\n      run: {uses: builtin:noop}\n    - id: c\n      run: {uses: builtin:noop}\n",
  );
  // A first run warms the worker's plan cache and the planner; the second is the one counted.
  for (const round of [1, 2]) {
    const from = counter.seen.length;
    const id = await stack.submit(manifest);
    for (let tries = 0; tries < 300; tries++) {
      const row = (
        await stack.database.query<{ settled: boolean; state: string }>(
          "SELECT settled_at IS NOT NULL AS settled, state FROM runs WHERE id = $1",
          [id],
        )
      ).rows[0];
      if (row?.settled === true) {
        assert.equal(row.state, "succeeded");
        break;
      }
      await sleep(50);
    }
    await sleep(300);
    if (round === 1) continue;
    const statements = statementsOfRun(counter.seen.slice(from), id);
    const listing = statements.map((statement) =>
      statement.text.replace(/\s+/g, " ").trim().slice(0, 90),
    );
    console.info(`statements of a 3-step run: ${statements.length}\n${listing.join("\n")}`);
    assert.ok(
      statements.length <= maxStatementsPerRun,
      `a 3-step run took ${statements.length} statements (bound ${maxStatementsPerRun}):\n${listing.join("\n")}`,
    );
    // Each step: one claim, and its report in one transaction of four statements.
    assert.equal(listing.filter((text) => text.startsWith("WITH claimed AS")).length, 3);
    // Fewer statements, the same events: every transition's, once, in order.
    const events = (
      await stack.database.query<{ event: RunEvent }>(
        `SELECT event FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 ORDER BY id, n`,
        [id],
      )
    ).rows.map(
      ({ event }) => `${event.type}${event.stepId === undefined ? "" : ` ${event.stepId}`}`,
    );
    assert.deepEqual(events, [
      "run.queued",
      "run.running",
      ...["a", "b", "c"].flatMap((step) => [
        `step.ready ${step}`,
        `step.running ${step}`,
        `step.succeeded ${step}`,
      ]),
      "run.succeeded",
    ]);
  }
});
