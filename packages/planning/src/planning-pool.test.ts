import assert from "node:assert/strict";
import { measureEventLoopLag } from "@packrun/testing";
import { afterAll, test } from "vitest";
import { planPack } from "./build-plan.ts";
import { PackValidationError } from "./diagnostic.ts";
import { createPlanningPool } from "./planning-pool.ts";

const pool = createPlanningPool({ threads: 1, timeoutMs: 20_000, memoryMb: 256 });
afterAll(() => pool.close());

function manifest(spec: string): string {
  return `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: pooled, version: 1.0.0}
spec:
${spec}`;
}

const simple = manifest(`  inputs: [{name: who, type: string}]
  steps:
    - id: hello
      when: "inputs.who != ''"
      run: {uses: builtin:shell, with: {argv: [echo, "{{ inputs.who }}"]}}
`);

test("a pooled plan is the plan planPack makes", async () => {
  const pooled = await pool.plan(simple, { inputs: { who: "world" } });
  const direct = planPack(simple, { inputs: { who: "world" } });
  assert.equal(pooled.planHash, direct.planHash);
  assert.equal(pooled.planJson, direct.planJson);
  assert.deepEqual(pooled.summary, direct.summary);
  assert.deepEqual(await pool.inspect(simple), { name: "pooled", version: "1.0.0" });
});

test("refusals cross the thread as the same errors, with every diagnostic", async () => {
  const error = await pool
    .plan(simple, { inputs: { who: "x", nope: 1 } })
    .catch((caught: unknown) => caught);
  assert.ok(error instanceof PackValidationError, String(error));
  assert.equal(error.code, "INPUT_UNKNOWN");
  assert.match(error.diagnostics[0]?.path ?? "", /nope/);
  const invalid = await pool.inspect("kind: [").catch((caught: unknown) => caught);
  assert.ok(invalid instanceof PackValidationError, String(invalid));
  assert.equal(invalid.code, "PACK_YAML_SYNTAX");
});

/**
 * 5,000 iterations, each copying a 200 KB string: about 2.5 s, far over the 1 s budget, because
 * the budget looks at the clock only every 1,024 iterations.
 */
const slowWhen = "inputs.xs.map(x, (inputs.s + inputs.s + string(x)).size()).size() > 0";
const slow = manifest(`  inputs: [{name: xs, type: array}, {name: s, type: string}]
  steps:
    - id: slow
      when: "${slowWhen}"
      run: {uses: builtin:noop}
`);
const slowInputs = { xs: Array.from({ length: 5_000 }, (_, i) => i), s: "x".repeat(100_000) };

test("an expression that overruns its budget between clock checks never stalls the caller's event loop", async () => {
  const { lagMs, outcome } = await measureEventLoopLag(pool.plan(slow, { inputs: slowInputs }));
  assert.ok(outcome instanceof PackValidationError, String(outcome));
  assert.equal(outcome.code, "PACK_EXPRESSION");
  assert.match(outcome.message, /evaluation budget/);
  assert.ok(lagMs < 250, `the caller's event loop stalled for ${Math.round(lagMs)} ms`);
});

test("planning that outlasts the pool's time limit is stopped with PACK_LIMIT, and the pool recovers", async () => {
  const strict = createPlanningPool({ threads: 1, timeoutMs: 600 });
  try {
    const stopped = strict.plan(slow, { inputs: slowInputs });
    // The limit counts from a task's start: this one waits behind the slow one (and then for a
    // new thread to load the planning modules) far longer than 0.6 s, and is not charged for it.
    const queued = strict.plan(simple, { inputs: { who: "queued" } });
    const { lagMs, outcome } = await measureEventLoopLag(stopped);
    assert.equal((outcome as { code?: string }).code, "PACK_LIMIT", String(outcome));
    assert.match((outcome as Error).message, /longer than 600 ms/);
    assert.ok(lagMs < 250, `the caller's event loop stalled for ${Math.round(lagMs)} ms`);
    assert.equal((await queued).summary.packName, "pooled");
    // The stopped thread was replaced: the next plan works.
    const next = await strict.plan(simple, { inputs: { who: "again" } });
    assert.equal(next.summary.packName, "pooled");
  } finally {
    await strict.close();
  }
});
