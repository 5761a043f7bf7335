import assert from "node:assert/strict";
import { test } from "vitest";
import { executeStep } from "../execute-step.ts";
import { collectLogs, makeDirs, stepRequest } from "../testing/step-fixtures.ts";
import type { ModuleName } from "../types.ts";

test("builtin:noop succeeds and logs its message, masked", async () => {
  const dirs = await makeDirs();
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:noop",
        with: { message: "nothing to do with hunter22" },
        secrets: { password: "hunter22" },
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded");
    assert.deepEqual(logs.texts("stdout"), ["nothing to do with ***"]);
    assert.deepEqual(result.outputs, {});

    const silent = await executeStep(stepRequest(dirs, { uses: "builtin:noop", with: {} }));
    assert.equal(silent.outcome, "succeeded");
  } finally {
    await dirs.cleanup();
  }
});

test("unknown modules and shell-on-container fail with a reason", async () => {
  const dirs = await makeDirs();
  try {
    const unknown = await executeStep(
      stepRequest(dirs, { uses: "builtin:teleport" as ModuleName, with: {} }),
    );
    assert.equal(unknown.outcome, "failed");
    assert.equal(unknown.reason, 'unknown module "builtin:teleport"');

    const shellInContainer = await executeStep(stepRequest(dirs, { runtime: "container" }));
    assert.equal(shellInContainer.outcome, "failed");
    assert.match(shellInContainer.reason, /use builtin:container/);
  } finally {
    await dirs.cleanup();
  }
});

test("an onLog callback that throws makes executeStep reject after the step ended", async () => {
  const dirs = await makeDirs();
  try {
    await assert.rejects(
      executeStep(
        stepRequest(dirs, {
          uses: "builtin:noop",
          with: { message: "hi" },
          onLog: () => {
            throw new Error("sink down");
          },
        }),
      ),
      /onLog callback threw/,
    );
  } finally {
    await dirs.cleanup();
  }
});
