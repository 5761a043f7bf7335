import assert from "node:assert/strict";
import { test } from "vitest";
import { runtimeSupport } from "./support.ts";
import {
  makeDirs,
  processesWithMarker,
  startCrashChild,
  type TestDirs,
  uniqueMarker,
  waitFor,
} from "./testing/step-fixtures.ts";

async function crashAndCheck(dirs: TestDirs, runtime: "process" | "sandbox"): Promise<void> {
  const marker = uniqueMarker();
  const child = await startCrashChild({
    workdir: dirs.workdir,
    stagingRoot: dirs.stagingRoot,
    runtime,
    with: {
      // A double-forked daemon in its own session, a plain background child, and the step itself.
      script: [
        `setsid sh -c 'sleep 1000; :' "$MARK" &`,
        `sh -c 'sleep 1000; :' "$MARK" &`,
        "echo ready",
        "sleep 1000",
      ].join("\n"),
      // Through the environment, so only the two daemons carry the marker in their command line.
      env: { MARK: marker },
    },
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    assert.ok(
      await waitFor(async () => (await processesWithMarker(marker)).length === 2),
      "the step's descendants should be running before the crash",
    );
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
  assert.ok(
    await waitFor(async () => (await processesWithMarker(marker)).length === 0),
    `descendants survived the worker: ${await processesWithMarker(marker)}`,
  );
}

test("kill -9 of the worker kills every descendant of a process step", async (t) => {
  if (!(await runtimeSupport()).pidNamespace) {
    t.skip(
      "no PID namespace (bubblewrap missing): a crashed worker's step survives until reapOrphans",
    );
    return;
  }
  const dirs = await makeDirs();
  try {
    await crashAndCheck(dirs, "process");
  } finally {
    await dirs.cleanup();
  }
});

test("kill -9 of the worker kills every descendant of a sandbox step", async (t) => {
  if (!(await runtimeSupport()).sandbox) {
    t.skip("the sandbox runtime does not work on this machine");
    return;
  }
  const dirs = await makeDirs();
  try {
    await crashAndCheck(dirs, "sandbox");
  } finally {
    await dirs.cleanup();
  }
});
