import assert from "node:assert/strict";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "./testing/executor-stack.ts";

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
