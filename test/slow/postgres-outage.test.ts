/**
 * Issue 19, break 4 (slow suite): a PostgreSQL outage longer than a lease must not run finished
 * work again. A step finishes while the database is down; its lease expires meanwhile (the
 * database's clock runs on). Before the fix the worker's result was lost, the reconciler took the
 * step back after the outage and another attempt ran it a second time. Now the worker retries
 * its result and the reconciler leaves expired leases alone for a grace period after an outage.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
} from "../../services/executor/src/testing/executor-stack.ts";
import { slowSkip, stopPostgres } from "./servers.ts";

describe("a PostgreSQL outage longer than a lease", { skip: slowSkip !== false }, () => {
  let stack: ExecutorStack;
  beforeAll(async () => {
    stack = await startExecutorStack();
  });
  afterAll(() => stack.close());

  test("a step that finished during the outage is recorded once, never run again", async () => {
    const dir = await stepSharedDir("pg-outage-");
    const id = await stack.submit(
      packManifest(
        "pg-outage",
        `  inputs: [{name: dir, type: string}]
  steps:
    - id: work
      run:
        uses: builtin:shell
        with:
          script: 'echo started >> "$D/ran"; while [ ! -e "$D/go" ]; do sleep 0.05; done; echo finished'
          env: {D: "{{ inputs.dir }}"}
    - id: after
      run: {uses: builtin:noop}
`,
      ),
      { inputs: { dir } },
    );
    // Wait until the step runs, take the database away, then let the step finish: it ends
    // during the outage, well within its lease (3 s), which then expires as the outage goes on.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ran = await readFile(join(dir, "ran"), "utf8").catch(() => "");
      if (ran.includes("started")) break;
      assert.ok(Date.now() < deadline, "the step never started");
      await sleep(50);
    }
    const restart = await stopPostgres();
    await writeFile(join(dir, "go"), "");
    await sleep(8_000);
    await restart();

    const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    const work = run.steps.find((step) => step.id === "work");
    assert.equal(work?.state, StepState.SUCCEEDED);
    assert.equal(
      (await readFile(join(dir, "ran"), "utf8")).trim().split("\n").length,
      1,
      "the finished step ran once",
    );
    assert.equal(work?.attempt, 1, "no second attempt");
  });
});
