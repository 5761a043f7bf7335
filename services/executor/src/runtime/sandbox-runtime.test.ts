import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, test } from "vitest";
import { executeStep } from "./execute-step.ts";
import { runtimeSupport } from "./support.ts";
import { collectLogs, makeDirs, stepRequest } from "./testing/step-fixtures.ts";
import type { StepExecutionRequest, StepExecutionResult } from "./types.ts";

const available = (await runtimeSupport()).sandbox;
const skip = available ? false : "bubblewrap cannot create sandboxes on this machine";

let server: Server;
let port = 0;
beforeAll(async () => {
  server = createServer((socket) => socket.end("hello from the host\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Runs a script in the sandbox; returns the result and stdout lines. */
async function sandboxed(
  script: string,
  overrides: Partial<StepExecutionRequest> = {},
): Promise<{ result: StepExecutionResult; stdout: string[]; stderr: string[] }> {
  const dirs = await makeDirs();
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(dirs, {
        runtime: "sandbox",
        with: { script },
        onLog: logs.onLog,
        ...overrides,
      }),
    );
    return { result, stdout: logs.texts("stdout"), stderr: logs.texts("stderr") };
  } finally {
    await dirs.cleanup();
  }
}

/** bash's /dev/tcp connects without needing any network tool in the image. */
const connectScript = (target: string): string =>
  `bash -c 'exec 3<>/dev/tcp/${target}/${port} && head -n1 <&3' 2>/dev/null || echo "connect failed"`;

test("open mode: the host's loopback, where the control plane listens, is unreachable too", {
  skip: skip !== false,
}, async () => {
  const { result, stdout } = await sandboxed(connectScript("127.0.0.1"));
  assert.equal(result.outcome, "succeeded", result.reason);
  assert.deepEqual(stdout, ["connect failed"]);
});

test("sealed mode: no route to the host's 127.0.0.1", { skip: skip !== false }, async () => {
  const { result, stdout } = await sandboxed(connectScript("127.0.0.1"), {
    sandbox: { mode: "sealed", egressAllowlist: [] },
  });
  assert.equal(result.outcome, "succeeded", result.reason);
  assert.ok(stdout.includes("connect failed"), stdout.join("|"));
  assert.ok(!stdout.includes("hello from the host"));
});

test("sealed mode: names cannot be resolved and only loopback exists", {
  skip: skip !== false,
}, async () => {
  const hostResolves = await lookup("deb.debian.org").then(
    () => true,
    () => false,
  );
  const script =
    "getent hosts deb.debian.org && echo resolved || echo 'no resolution'; ls /sys/class/net 2>/dev/null || cat /proc/net/dev";
  const sealed = await sandboxed(script, { sandbox: { mode: "sealed", egressAllowlist: [] } });
  assert.equal(sealed.result.outcome, "succeeded", sealed.result.reason);
  assert.ok(sealed.stdout.includes("no resolution"), sealed.stdout.join("|"));
  assert.ok(!sealed.stdout.includes("resolved"));
  if (hostResolves) {
    const open = await sandboxed(script);
    assert.ok(open.stdout.includes("resolved"), `control: ${open.stdout.join("|")}`);
  }
});

test("a sealed step on the process runtime has no network either", {
  skip: skip !== false,
}, async () => {
  const logs = collectLogs();
  const dirs = await makeDirs();
  try {
    const result = await executeStep(
      stepRequest(dirs, {
        runtime: "process",
        sandbox: { mode: "sealed", egressAllowlist: ["example.com"] },
        with: { script: connectScript("127.0.0.1") },
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded");
    assert.ok(logs.texts("stdout").includes("connect failed"));
  } finally {
    await dirs.cleanup();
  }
});

test("the root is read-only; only the workdir is writable; other host files are absent", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(dirs.workdir, { recursive: true });
    await writeFile(path.join(dirs.root, "host-only.txt"), "not for the step");
    const logs = collectLogs();
    const script = [
      'for target in /usr/x /etc/x /x /var/x "$STAGING/x"; do touch "$target" 2>/dev/null && echo "wrote $target" || echo "refused $target"; done',
      'echo data > "$PWD/made-here.txt" && echo "wrote workdir"',
      'test -e "$HOSTFILE" && echo "host file visible" || echo "host file absent"',
      "test -e /work && echo '/work visible' || echo '/work absent'",
      "touch /tmp/scratch && echo 'tmp writable'",
    ].join("\n");
    const result = await executeStep(
      stepRequest(dirs, {
        runtime: "sandbox",
        with: {
          script,
          env: { STAGING: dirs.stagingRoot, HOSTFILE: path.join(dirs.root, "host-only.txt") },
        },
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded", `${result.reason} ${logs.texts().join("|")}`);
    assert.deepEqual(logs.texts("stdout"), [
      "refused /usr/x",
      "refused /etc/x",
      "refused /x",
      "refused /var/x",
      `refused ${dirs.stagingRoot}/x`,
      "wrote workdir",
      "host file absent",
      "/work absent",
      "tmp writable",
    ]);
    assert.equal(await readFile(path.join(dirs.workdir, "made-here.txt"), "utf8"), "data\n");
  } finally {
    await dirs.cleanup();
  }
});

test("own PID, UTS and IPC namespaces, no capabilities, only the step's environment", {
  skip: skip !== false,
}, async () => {
  process.env.PACKRUN_TEST_WORKER_ONLY = "worker-secret-value";
  try {
    const script = [
      'echo "pid1=$(cat /proc/1/comm)"',
      "echo \"procs=$(ls /proc | grep -c '^[0-9]')\"",
      'echo "host=$(hostname)"',
      "grep CapEff /proc/self/status | tr -d '\\t'",
      "echo \"env=$(env | cut -d= -f1 | sort | tr '\\n' ' ')\"",
    ].join("\n");
    const { result, stdout } = await sandboxed(script, {
      with: { script, env: { MINE: "1" } },
    });
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.equal(stdout[0], "pid1=bwrap");
    const processes = Number(stdout[1]?.slice("procs=".length));
    assert.ok(processes > 0 && processes < 10, `saw ${processes} processes`);
    assert.equal(stdout[2], "host=packrun");
    assert.equal(stdout[3], "CapEff:0000000000000000");
    assert.equal(
      stdout[4]?.trim(),
      "env=HOME MINE PACKRUN_OUTPUT PACKRUN_REAP_TAG PATH PWD TMPDIR",
    );
  } finally {
    delete process.env.PACKRUN_TEST_WORKER_ONLY;
  }
});

test("a sandbox step that outputs and writes artifacts works like a process step", {
  skip: skip !== false,
}, async () => {
  const dirs = await makeDirs();
  try {
    const result = await executeStep(
      stepRequest(dirs, {
        runtime: "sandbox",
        sandbox: { mode: "sealed", egressAllowlist: [] },
        with: { script: 'echo "n=1" >> "$PACKRUN_OUTPUT"; echo hi > art.txt' },
        artifacts: [{ name: "art", path: "art.txt" }],
      }),
    );
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.deepEqual(result.outputs, { n: "1" });
    assert.equal(result.artifacts[0]?.sizeBytes, 3);
  } finally {
    await dirs.cleanup();
  }
});
