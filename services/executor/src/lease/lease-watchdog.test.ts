/**
 * Issue 19, break 2 (second half): a worker whose event loop froze (a CEL evaluation in a policy
 * gate, 60 s) lost its leases, the reconciler handed its steps to another worker, and the frozen
 * copies kept running: the same step twice at once. The lease watchdog, a thread with its own
 * event loop, kills a step when its lease runs out however frozen the worker's main thread is.
 * The freezes here are real: `Atomics.wait` blocks this process's main thread, which runs the
 * worker, exactly as a synchronous evaluation would.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "@packrun/logging";
import { RunState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import type { Executor } from "../rpc/executor-server.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";
import { LeaseWatchdog } from "./lease-watchdog.ts";
import { monotonicMs } from "./monotonic-clock.ts";

/** Blocks this thread's event loop for `ms`, as a runaway synchronous computation would. */
function freezeEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test("the watchdog kills a tracked process at its deadline while the main thread is frozen", async () => {
  const watchdog = new LeaseWatchdog(createLogger({ service: "watchdog-test", level: "silent" }));
  try {
    const child = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const exited = once(child, "exit");
    const deadline = monotonicMs() + 300;
    const attempt = watchdog.watch(deadline, { test: "freeze" });
    attempt.watch.track({ kind: "process", pid: -(child.pid as number) });
    freezeEventLoop(1_500);
    // Still inside the same macrotask: the main thread has not run a single callback since.
    const afterFreeze = monotonicMs();
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.equal(signal, "SIGKILL", `exit code ${code}`);
    assert.ok(attempt.expired());
    assert.ok(afterFreeze - deadline > 1_000);
    attempt.release();
  } finally {
    await watchdog.close();
  }
});

test("a renewed lease keeps the process alive; released attempts and untracked pids are never killed", async () => {
  const watchdog = new LeaseWatchdog(createLogger({ service: "watchdog-test", level: "silent" }));
  try {
    const renewed = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const released = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const untracked = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const a = watchdog.watch(monotonicMs() + 200, {});
    a.watch.track({ kind: "process", pid: -(renewed.pid as number) });
    const b = watchdog.watch(monotonicMs() + 200, {});
    b.watch.track({ kind: "process", pid: -(released.pid as number) });
    const c = watchdog.watch(monotonicMs() + 200, {});
    const untrack = c.watch.track({ kind: "process", pid: -(untracked.pid as number) });
    b.release();
    untrack();
    for (let i = 0; i < 8; i++) {
      a.renew(monotonicMs() + 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const child of [renewed, released, untracked]) {
      assert.equal(child.exitCode, null);
      assert.equal(child.signalCode, null);
      child.kill("SIGKILL");
    }
    a.release();
    c.release();
  } finally {
    await watchdog.close();
  }
});

let stack: ExecutorStack;
let worker: Executor;
beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  worker = await stack.addExecutor({
    serve: false,
    worker: { leaseMs: 1_500, killGraceMs: 500, concurrency: 1 },
  });
});
afterAll(async () => {
  await worker?.close();
  await stack?.close();
});

test("a worker frozen past its lease never runs a step beside its replacement", async () => {
  const dir = await stepSharedDir("watchdog-");
  const id = await stack.submit(
    packManifest(
      "frozen-worker",
      `  inputs: [{name: dir, type: string}]
  steps:
    - id: ticking
      run:
        uses: builtin:shell
        with:
          env: {D: "{{ inputs.dir }}"}
          script: |
            copy=$(cat /proc/sys/kernel/random/uuid)
            for i in $(seq 1 60); do echo "$copy $(date +%s%3N)" >> "$D/ticks"; sleep 0.1; done
`,
    ),
    { inputs: { dir } },
  );
  const ticks = async (): Promise<{ copy: string; at: number }[]> =>
    (await readFile(join(dir, "ticks"), "utf8").catch(() => ""))
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => {
        const [copy, at] = line.split(" ");
        return { copy: copy as string, at: Number(at) };
      });
  // Wait until the first copy is ticking, then freeze the worker (this thread) for 5 s.
  const started = Date.now();
  while ((await ticks()).length < 3) {
    assert.ok(Date.now() - started < 60_000, "the step never started");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const frozenAt = Date.now();
  freezeEventLoop(5_000);
  const thawedAt = Date.now();

  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  const all = await ticks();
  const firstCopyId = all[0]?.copy;
  const firstCopy = all.filter((tick) => tick.copy === firstCopyId);
  const lastOfFirst = Math.max(...firstCopy.map((tick) => tick.at));
  // The lease (1.5 s) was last renewed before the freeze; the copy died about then, long before
  // the thaw, and never ticked again. Without the watchdog it ticks all through the freeze.
  assert.ok(
    lastOfFirst < frozenAt + 1_500 + 600,
    `the frozen worker's copy ticked ${lastOfFirst - frozenAt} ms into a 5 s freeze`,
  );
  assert.ok(lastOfFirst < thawedAt - 2_000);
  // The step was handed back (not failed) and ran again, to completion, as a new copy.
  const secondCopy = all.filter((tick) => tick.copy !== firstCopyId);
  assert.ok(secondCopy.length === 60, `second copy ticked ${secondCopy.length} times`);
  assert.ok(Math.min(...secondCopy.map((tick) => tick.at)) > lastOfFirst);
  const steps = await stack.database.query<{ failed_attempts: number }>(
    "SELECT failed_attempts FROM steps WHERE run_id = $1 AND step_id = 'ticking'",
    [id],
  );
  assert.equal(steps.rows[0]?.failed_attempts, 0);
});
