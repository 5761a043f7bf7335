import assert from "node:assert/strict";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { measureEventLoopLag } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";

let stack: ExecutorStack;
beforeAll(async () => {
  stack = await startExecutorStack();
});
afterAll(() => stack.close());

/**
 * The docs' `gated-release` example (docs/task-pack-format.md) without its network call and
 * approval: a policy gate whose parameters read an earlier step's outputs. Those values exist
 * only at run time, so the gate must resolve them when it is reached.
 */
function gatedRelease(frozen: "true" | "false"): string {
  return packManifest(
    `gated-release-${frozen}`,
    `  inputs:
    - {name: environment, type: string, schema: {enum: [staging, production]}}
  policies:
    - name: change-window
      expression: "parameters.environment != 'production' || parameters.frozen == false"
  steps:
    - id: freezeStatus
      run:
        uses: builtin:shell
        with:
          script: 'echo "frozen=${frozen}" >> "$PACKRUN_OUTPUT"'
    - id: window
      gate:
        policy:
          policy: change-window
          failAction: fail
          parameters:
            environment: "{{ inputs.environment }}"
            frozen: "{{ steps.freezeStatus.outputs.frozen == 'true' }}"
    - id: release
      run: {uses: builtin:noop}
`,
  );
}

describe("a policy gate on an earlier step's outputs", () => {
  test("passes when the outputs allow it, through planner, executor and worker", async () => {
    const id = await stack.submit(gatedRelease("false"), { inputs: { environment: "production" } });
    const run = await stack.waitFor(id);
    const window = run.steps.find((step) => step.id === "window");
    assert.equal(window?.state, StepState.SUCCEEDED, window?.reason ?? "no window step");
    assert.equal(window?.outputs?.decision, "allow");
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  });

  test("denies (not 'could not be evaluated') when the outputs forbid it", async () => {
    const id = await stack.submit(gatedRelease("true"), { inputs: { environment: "production" } });
    const run = await stack.waitFor(id);
    const window = run.steps.find((step) => step.id === "window");
    assert.equal(run.state, RunState.FAILED);
    assert.equal(window?.state, StepState.FAILED);
    assert.equal(window?.outputs?.decision, "deny");
    assert.match(window?.reason ?? "", /policy "change-window" denied/);
  });
});

/**
 * Issue 19, break 2: a policy gate evaluated on the executor's event loop froze a worker (60 s)
 * for every run it served. Run-time evaluations now run in the planning threads: this policy,
 * over an earlier step's output (so only the executor can evaluate it), overruns its 1 s budget
 * between clock checks (about 2.5 s of copying 200 KB strings), and the executor, in this
 * process, keeps answering meanwhile.
 */
test("a policy that overruns its budget fails its gate without stalling the executor", async () => {
  const id = await stack.submit(
    packManifest(
      "slow-policy",
      `  inputs: [{name: xs, type: array}]
  policies:
    - name: slow
      expression: "inputs.xs.map(x, (parameters.s + parameters.s + string(x)).size()).size() > 0"
  steps:
    - id: make
      run:
        uses: builtin:shell
        with:
          script: printf 's=%s\\n' "$(head -c 100000 /dev/zero | tr '\\0' x)" >> "$PACKRUN_OUTPUT"
    - id: gate
      gate:
        policy:
          policy: slow
          failAction: fail
          parameters: {s: "{{ steps.make.outputs.s }}"}
`,
    ),
    { inputs: { xs: Array.from({ length: 5_000 }, (_, i) => i) } },
  );
  const { lagMs, outcome } = await measureEventLoopLag(
    stack.waitFor(id, undefined, { timeoutMs: 60_000 }),
  );
  const run = outcome as Awaited<ReturnType<ExecutorStack["waitFor"]>>;
  assert.equal(run.state, RunState.FAILED);
  const gate = run.steps.find((step) => step.id === "gate");
  assert.match(gate?.reason ?? "", /exceeded its evaluation budget/);
  assert.ok(lagMs < 1_000, `the executor's event loop stalled for ${Math.round(lagMs)} ms`);
});
