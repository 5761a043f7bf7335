import assert from "node:assert/strict";
import { beforeAll, describe, test } from "vitest";
import { executeStepWith } from "./execute-step.ts";
import { type RuntimeSupport, runtimeSupport } from "./support.ts";
import { makeDirs, stepRequest } from "./testing/step-fixtures.ts";

let support: RuntimeSupport;
beforeAll(async () => {
  support = await runtimeSupport();
});

/** Runs a script in an open step with the given support; returns how it ended. */
async function run(script: string, using: RuntimeSupport) {
  const local = await makeDirs();
  try {
    return await executeStepWith(stepRequest(local, { with: { script } }), using);
  } finally {
    await local.cleanup();
  }
}

describe("exit status of a step in a PID namespace", () => {
  test("without GNU time, a status above 128 is reported as an exit code that may be a signal", async () => {
    assert.ok(support.pidNamespace, "bubblewrap must create PID namespaces on the test machine");
    const noTime: RuntimeSupport = { ...support, time: null, cgroupMetrics: false };
    const exited = await run("exit 130", noTime);
    assert.equal(exited.outcome, "failed");
    assert.equal(exited.exitCode, 130);
    assert.equal(exited.signal, null);
    assert.equal(
      exited.reason,
      "exited with code 130, or was killed by SIGINT (the sandbox reports both alike)",
    );
    const killed = await run("kill -KILL $$", noTime);
    assert.equal(killed.outcome, "failed");
    assert.equal(killed.exitCode, 137);
    assert.equal(killed.signal, null);
    assert.match(killed.reason, /^exited with code 137, or was killed by SIGKILL/);
    const low = await run("exit 128", noTime);
    assert.equal(low.reason, "exited with code 128");
    const top = await run("exit 255", noTime);
    assert.equal(top.exitCode, 255);
    assert.match(top.reason, /^exited with code 255, or was killed by SIG/);
  });

  test("measured by the cgroup (no GNU time), the same honesty holds", async () => {
    if (!support.cgroupMetrics) return;
    const exited = await run("exit 130", support);
    assert.equal(exited.exitCode, 130);
    assert.equal(exited.signal, null);
    assert.match(exited.reason, /^exited with code 130, or was killed by SIGINT/);
  });

  test("with GNU time the two are told apart exactly", async () => {
    assert.ok(support.time, "GNU time must be installed on the test machine");
    const timed: RuntimeSupport = { ...support, cgroupMetrics: false };
    const exited = await run("exit 130", timed);
    assert.equal(exited.exitCode, 130);
    assert.equal(exited.signal, null);
    assert.equal(exited.reason, "exited with code 130");
    const killed = await run("kill -INT $$", timed);
    assert.equal(killed.exitCode, null);
    assert.equal(killed.signal, "SIGINT");
    assert.equal(killed.reason, "killed by signal SIGINT");
  });

  test("a signal the worker sent (timeout) is reported as that signal", async () => {
    const noTime: RuntimeSupport = { ...support, time: null, cgroupMetrics: false };
    const local = await makeDirs();
    try {
      const result = await executeStepWith(
        stepRequest(local, {
          with: { script: "trap '' TERM; while :; do sleep 1; done" },
          timeoutMs: 500,
          killGraceMs: 300,
        }),
        noTime,
      );
      assert.equal(result.outcome, "timed_out");
      assert.equal(result.exitCode, null);
      assert.equal(result.signal, "SIGKILL");
    } finally {
      await local.cleanup();
    }
  });
});
