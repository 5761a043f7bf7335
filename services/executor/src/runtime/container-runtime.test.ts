import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "vitest";
import { ensureBusyboxImage } from "../../../../test/fixtures/images/busybox-image.ts";
import { executeStep } from "./execute-step.ts";
import { LABELS, podmanGlobalArgs } from "./podman.ts";
import { reapOrphans } from "./reap-orphans.ts";
import { runTool } from "./run-tool.ts";
import { runtimeSupport } from "./support.ts";
import {
  collectLogs,
  makeDirs,
  startCrashChild,
  stepRequest,
  waitFor,
} from "./testing/step-fixtures.ts";

const support = await runtimeSupport();
const skip = support.container
  ? false
  : `podman cannot run containers here: ${support.details.find((line) => line.startsWith("container runtime") || line.startsWith("podman")) ?? "unknown"}`;
const image = support.container ? await ensureBusyboxImage() : "";

/** Container ids carrying a label value (all states). */
async function containersLabelled(key: string, value: string): Promise<string[]> {
  const listed = await runTool("podman", [
    ...podmanGlobalArgs(),
    "ps",
    "--all",
    "--quiet",
    "--filter",
    `label=${key}=${value}`,
  ]);
  assert.equal(listed.code, 0, listed.stderr);
  return listed.stdout.split("\n").filter((id) => id !== "");
}

test("container lifecycle: logs, exit code, outputs, artifacts, masking, removal", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  try {
    const runId = `run-${randomUUID()}`;
    const token = "container-secret-42";
    const pem = "-----BEGIN-----\nc2VjcmV0LWxpbmU=\n-----END-----";
    const logs = collectLogs();
    const script = [
      'echo "hello $TOKEN"',
      "echo to-stderr >&2",
      'echo "$PEM"',
      "pwd",
      "ls /sys/class/net | tr '\\n' ' '; echo",
      'echo "answer=42" >> "$PACKRUN_OUTPUT"',
      "printf built > out.txt",
    ].join("\n");
    const result = await executeStep(
      stepRequest(dirs, {
        runId,
        uses: "builtin:container",
        runtime: "container",
        sandbox: { mode: "sealed", egressAllowlist: [] },
        with: {
          image,
          command: ["/bin/sh", "-c", script],
          env: { TOKEN: token, PEM: pem },
          workdir: "sub",
        },
        secrets: { token, pem },
        artifacts: [{ name: "out", path: "sub/out.txt" }],
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(logs.texts("stdout"), [
      "hello ***",
      "***",
      "***",
      "***",
      "/workspace/sub",
      "lo ",
    ]);
    assert.deepEqual(logs.texts("stderr"), ["to-stderr"]);
    assert.deepEqual(result.outputs, { answer: "42" });
    assert.equal(result.artifacts[0]?.sizeBytes, 5);
    assert.ok(result.cpuMicros >= 0 && result.peakMemoryBytes >= 0);
    // The image that ran, by the manifest digest podman resolved the reference to.
    const inspected = await runTool("podman", [
      ...podmanGlobalArgs(),
      "image",
      "inspect",
      "--format",
      "{{.Digest}}",
      image,
    ]);
    assert.match(inspected.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(result.image, { reference: image, digest: inspected.stdout.trim() });
    assert.deepEqual(await containersLabelled(LABELS.run, runId), []);

    const failing = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:container",
        runtime: "container",
        with: { image, command: ["/bin/sh", "-c", "exit 3"] },
      }),
    );
    assert.equal(failing.outcome, "failed");
    assert.equal(failing.exitCode, 3);
    assert.equal(failing.reason, "exited with code 3");
  } finally {
    await dirs.cleanup();
  }
});

test("container timeout: SIGTERM first, SIGKILL after the grace period, then removed", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  try {
    const runId = `run-${randomUUID()}`;
    const logs = collectLogs();
    const started = Date.now();
    const result = await executeStep(
      stepRequest(dirs, {
        runId,
        uses: "builtin:container",
        runtime: "container",
        with: {
          image,
          command: [
            "/bin/sh",
            "-c",
            'trap "echo got TERM" TERM; echo started; sleep 100 & wait; sleep 100',
          ],
        },
        timeoutMs: 2_000,
        killGraceMs: 1_000,
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "timed_out");
    assert.equal(result.reason, "timed out after 2s");
    assert.deepEqual(logs.texts("stdout"), ["started", "got TERM"]);
    assert.ok(Date.now() - started >= 3_000);
    assert.deepEqual(await containersLabelled(LABELS.run, runId), []);
  } finally {
    await dirs.cleanup();
  }
});

test("container memory and pids limits are hard cgroup limits", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  try {
    const limits = {
      maxLogBytes: 65536,
      maxLineBytes: 1024,
      memoryBytes: 32 * 1024 * 1024,
      pids: 16,
    };
    const memory = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:container",
        runtime: "container",
        limits,
        with: {
          image,
          command: ["/bin/sh", "-c", "head -c 100000000 /dev/zero | tr '\\0' a | sort > /dev/null"],
        },
      }),
    );
    assert.equal(memory.outcome, "failed");
    assert.equal(memory.exitCode, 137, memory.reason);
    // Usage is read from the parent cgroup, which also holds conmon (outside the limit).
    assert.ok(
      memory.peakMemoryBytes > 16 * 1024 * 1024 &&
        memory.peakMemoryBytes < limits.memoryBytes + 16 * 1024 * 1024,
      `${memory.peakMemoryBytes}`,
    );
    assert.ok(memory.cpuMicros > 0);

    const logs = collectLogs();
    const pids = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:container",
        runtime: "container",
        limits,
        with: {
          image,
          command: ["/bin/sh", "-c", "for i in $(seq 1 40); do sleep 5 & done; echo spawned"],
        },
        onLog: logs.onLog,
      }),
    );
    assert.equal(pids.outcome, "failed");
    assert.ok(
      logs.texts("stderr").some((line) => /fork|resource/i.test(line)),
      logs.texts().join("|"),
    );
  } finally {
    await dirs.cleanup();
  }
});

test("a missing image in sealed mode fails clearly without pulling", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  try {
    const result = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:container",
        runtime: "container",
        sandbox: { mode: "sealed", egressAllowlist: [] },
        with: { image: "localhost/packrun-no-such-image:0" },
      }),
    );
    assert.equal(result.outcome, "failed");
    assert.match(result.reason, /^podman create failed: .*(image not known|no such image)/i);
  } finally {
    await dirs.cleanup();
  }
});

test("reapOrphans removes the container of a worker killed with -9", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  const workerId = `crashed-${randomUUID()}`;
  try {
    const child = await startCrashChild({
      workdir: dirs.workdir,
      stagingRoot: dirs.stagingRoot,
      uses: "builtin:container",
      runtime: "container",
      workerId,
      with: { image, command: ["/bin/sh", "-c", "echo ready; sleep 1000"] },
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    // podman keeps the container running without its worker: that is what the reaper is for.
    assert.equal((await containersLabelled(LABELS.worker, workerId)).length, 1);
    assert.equal(await reapOrphans(workerId), 1);
    assert.ok(
      await waitFor(async () => (await containersLabelled(LABELS.worker, workerId)).length === 0),
    );
  } finally {
    await reapOrphans(workerId);
    await dirs.cleanup();
  }
});
