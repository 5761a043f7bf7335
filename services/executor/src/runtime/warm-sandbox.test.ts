/**
 * Issue 15: steps are forked by a small spawn helper, not by the worker, and open steps join
 * network namespaces (and workdirs) prepared ahead. Each prepared namespace and workdir serves
 * one step: what a hostile step leaves behind (a listener, an abstract socket, a file) must never
 * be seen by the next step.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "vitest";
import { executeStep } from "./execute-step.ts";
import { launch, startSpawnHelper } from "./launcher.ts";
import { WORKER_IS_ROOT } from "./step-user.ts";
import { runtimeSupport } from "./support.ts";
import { collectLogs, makeDirs, stepRequest } from "./testing/step-fixtures.ts";
import type { KillTarget, StepExecutionRequest, StepExecutionResult } from "./types.ts";
import { WorkdirSlots } from "./workdir-slots.ts";

const support = await runtimeSupport();
const isolated = support.sandbox && support.network !== null && !support.unisolated;

/** Runs a script as an open process step; resolves with the result and its stdout lines. */
async function run(
  script: string,
  overrides: Partial<StepExecutionRequest> = {},
): Promise<{ result: StepExecutionResult; stdout: string[] }> {
  const dirs = await makeDirs();
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(dirs, { with: { script }, onLog: logs.onLog, ...overrides }),
    );
    return { result, stdout: logs.texts("stdout") };
  } finally {
    await dirs.cleanup();
  }
}

/** The parent pid of a process, from /proc. */
async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ")".
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

test.runIf(isolated)("a step is forked by the spawn helper, never by the worker", async () => {
  const helperPid = startSpawnHelper();
  assert.ok(helperPid !== undefined && helperPid !== process.pid);
  const targets: KillTarget[] = [];
  let leaderParent: number | null = null;
  const { result, stdout } = await run("echo started; sleep 0.5; echo done", {
    watch: {
      track(target) {
        targets.push(target);
        // The first target is the step's process group: its leader is what was spawned.
        if (target.kind === "process" && target.pid < 0 && leaderParent === null)
          void parentOf(-target.pid).then((parent) => {
            leaderParent = parent;
          });
        return () => {};
      },
    },
  });
  assert.equal(result.outcome, "succeeded", result.reason);
  assert.deepEqual(stdout, ["started", "done"]);
  assert.equal(leaderParent, helperPid, "the step's sandbox is a child of the spawn helper");
  // Both kill targets are still handed to the lease watchdog: the group and the PID namespace.
  assert.equal(targets.length, 2);
});

test.runIf(isolated)(
  "when the spawn helper dies, its steps die with it and the next step gets a new helper",
  async () => {
    const helperPid = startSpawnHelper() as number;
    const running = run("echo up; sleep 30; echo never");
    // Wait until the step runs, then kill the helper as a crash would.
    for (let tries = 0; tries < 200; tries++) {
      const children = await readFile(`/proc/${helperPid}/task/${helperPid}/children`, "utf8");
      if (children.trim() !== "") break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    process.kill(helperPid, "SIGKILL");
    const started = Date.now();
    const { result, stdout } = await running;
    assert.ok(Date.now() - started < 5_000, "the step ended with its helper");
    assert.notEqual(result.outcome, "succeeded");
    assert.ok(!stdout.includes("never"));
    const next = await run("echo again");
    assert.equal(next.result.outcome, "succeeded", next.result.reason);
    assert.notEqual(startSpawnHelper(), helperPid);
  },
);

test("a launched tool's output, input and exit status travel through the helper", async () => {
  const child = await launch("/bin/sh", ["-c", "read line; echo got:$line; echo err >&2; exit 3"], {
    stdio: ["write", "read", "read"],
  });
  const chunks: string[] = [];
  child.stdio[1]?.on("data", (chunk: Buffer) => chunks.push(chunk.toString()));
  const closed = once(child, "close");
  (child.stdio[0] as NodeJS.WritableStream).end("hello\n");
  const [code] = (await closed) as [number | null];
  assert.equal(code, 3);
  assert.equal(chunks.join(""), "got:hello\n");
  await assert.rejects(launch("/nonexistent/tool", [], { stdio: ["ignore", "ignore", "ignore"] }));
});

test.runIf(isolated && WORKER_IS_ROOT)(
  "a listener or abstract socket left by a step is not seen by the next step: no namespace is reused",
  async () => {
    const leave = [
      "readlink /proc/self/ns/net",
      // A daemon in its own session listening on loopback and on an abstract Unix socket.
      `setsid perl -MIO::Socket::INET -MIO::Socket::UNIX -e '
        my $t = IO::Socket::INET->new(LocalAddr => "127.0.0.1:7777", Listen => 5, ReuseAddr => 1) or die "tcp: $!";
        my $u = IO::Socket::UNIX->new(Local => "\\0packrun-left", Listen => 5) or die "unix: $!";
        $| = 1; print "listening\\n"; sleep 60' &`,
      "sleep 0.3",
      `bash -c 'exec 3<>/dev/tcp/127.0.0.1/7777' 2>/dev/null && echo own-listener-reachable`,
    ].join("\n");
    const first = await run(leave);
    assert.equal(first.result.outcome, "succeeded", first.result.reason);
    assert.ok(first.stdout.includes("listening"), first.stdout.join("|"));
    assert.ok(first.stdout.includes("own-listener-reachable"), "the attack works within a step");
    const probe = [
      "readlink /proc/self/ns/net",
      `bash -c 'exec 3<>/dev/tcp/127.0.0.1/7777' 2>/dev/null && echo tcp-reachable || echo tcp-refused`,
      `perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Peer => "\\0packrun-left") ? print "unix-reachable\\n" : print "unix-refused\\n"'`,
    ].join("\n");
    const second = await run(probe);
    assert.equal(second.result.outcome, "succeeded", second.result.reason);
    assert.deepEqual(second.stdout.slice(1), ["tcp-refused", "unix-refused"]);
    assert.notEqual(second.stdout[0], first.stdout[0], "each step gets a namespace of its own");
  },
);

test.runIf(WORKER_IS_ROOT && !support.unisolated)(
  "a workdir slot serves one attempt: a file left behind is gone and its tmpfs unmounted",
  async () => {
    const root = path.join(tmpdir(), `packrun-slots-${process.pid}`);
    const slots = new WorkdirSlots({
      root,
      bytes: 4 * 1024 * 1024,
      workerId: "slots-test",
      warm: 1,
    });
    try {
      const first = await slots.take();
      await writeFile(path.join(first.workdir, "left-behind"), "secret of the first step");
      first.release();
      const second = await slots.take();
      assert.notEqual(second.workdir, first.workdir);
      await assert.rejects(readFile(path.join(second.workdir, "left-behind")), { code: "ENOENT" });
      const mounts = await readFile("/proc/self/mounts", "utf8");
      assert.ok(mounts.includes(` ${second.workdir} tmpfs `), "the slot has its own tmpfs");
      second.release();
      await slots.close();
      const after = await readFile("/proc/self/mounts", "utf8");
      assert.ok(!after.includes(root), "every slot is unmounted once released");
      await assert.rejects(readFile(path.join(first.workdir, "left-behind")), { code: "ENOENT" });
    } finally {
      await slots.close();
    }
  },
);
