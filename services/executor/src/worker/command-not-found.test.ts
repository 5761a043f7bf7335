import assert from "node:assert/strict";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";

let stack: ExecutorStack;
beforeAll(async () => {
  stack = await startExecutorStack();
});
afterAll(() => stack.close());

/** Runs a one-step pack and returns its step's state and reason. */
async function runStep(name: string, run: string): Promise<{ state: StepState; reason: string }> {
  const id = await stack.submit(
    packManifest(name, `  steps:\n    - id: tool\n      run: ${run}\n`),
  );
  const done = await stack.waitFor(id);
  assert.equal(done.state, RunState.FAILED);
  const step = done.steps[0];
  return { state: step?.state ?? StepState.UNSPECIFIED, reason: step?.reason ?? "" };
}

describe("a step whose program is missing", () => {
  test("fails with 'command not found' when argv names it", async () => {
    const step = await runStep(
      "missing-argv",
      "{uses: builtin:shell, with: {argv: [packrun-no-such-tool, --version]}}",
    );
    assert.equal(step.state, StepState.FAILED);
    assert.match(step.reason, /^command not found: packrun-no-such-tool\b/);
  });

  test("fails with 'command not found' when its script runs it", async () => {
    const step = await runStep(
      "missing-script",
      "{uses: builtin:shell, with: {script: 'echo starting; packrun-no-such-tool scan .'}}",
    );
    assert.equal(step.state, StepState.FAILED);
    assert.match(step.reason, /^command not found: packrun-no-such-tool \(exited with code 127\)$/);
  });

  test("a relative path that does not exist is named as such", async () => {
    const step = await runStep(
      "missing-relative",
      "{uses: builtin:shell, with: {argv: [./release.sh, production]}}",
    );
    assert.match(step.reason, /^command not found: \.\/release\.sh\b/);
  });
});
