/**
 * Issue 8, item 12: a step that double-forks and `setsid`s a daemon leaves no survivor after the
 * step ends, after its timeout, and after its worker process is killed with SIGKILL, on the
 * process runtime (open pack) and on the sandbox runtime (sealed pack).
 *
 * The daemon's pid as the step sees it is a pid in the step's PID namespace, meaningless on the
 * host; so each daemon carries a unique marker in its command line and the host's /proc is
 * searched for it (processesWithMarker), which finds it whatever its pid namespace.
 */
import assert from "node:assert/strict";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, describe, test } from "vitest";
import { runtimeSupport } from "../../services/executor/src/runtime/support.ts";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
} from "../../services/executor/src/testing/executor-stack.ts";
import {
  eventually,
  processesWithMarker,
  uniqueMarker,
} from "../../services/executor/src/testing/processes.ts";

const support = await runtimeSupport();

let stack: ExecutorStack;
beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
});
afterAll(() => stack.close());

/** Starts a double-forked, setsid daemon carrying the marker, then does `then`. */
const daemonize = (then: string) =>
  `(setsid sh -c 'sleep 300; :' "$M" > /dev/null 2>&1 &) ; sh -c 'sleep 300; :' "$M" & echo started; ${then}`;

const pack = (name: string, mode: "open" | "sealed", step: string) =>
  packManifest(
    name,
    `  inputs: [{name: marker, type: string}]
  sandbox: {mode: ${mode}}
  steps:
${step}`,
  );

async function noSurvivor(marker: string): Promise<void> {
  await eventually(
    `no process with marker ${marker}`,
    async () => (await processesWithMarker(marker)).length === 0,
    { timeoutMs: 10_000, describe: async () => `${await processesWithMarker(marker)}` },
  );
}

for (const mode of ["open", "sealed"] as const) {
  const skip = mode === "sealed" && !support.sandbox ? "no sandbox on this machine" : false;
  describe(`${mode === "open" ? "process" : "sandbox"} runtime`, { skip: skip !== false }, () => {
    test("after the step ends", async () => {
      const worker = await stack.spawnWorker({ concurrency: 1, leaseMs: 10_000 });
      const marker = uniqueMarker();
      const id = await stack.submit(
        pack(
          `orphan-end-${mode}`,
          mode,
          `    - id: daemon
      run: {uses: builtin:shell, with: {env: {M: "{{ inputs.marker }}"}, script: ${JSON.stringify(daemonize("sleep 2; exit 0"))}}}
`,
        ),
        { inputs: { marker } },
      );
      await eventually(
        "the daemon running",
        async () => (await processesWithMarker(marker)).length > 0,
      );
      const run = await stack.waitFor(id);
      assert.equal(run.state, RunState.SUCCEEDED, run.reason);
      await noSurvivor(marker);
      worker.child.kill("SIGTERM");
      await worker.exited;
    });

    test("after a timeout", async () => {
      const worker = await stack.spawnWorker({ concurrency: 1, leaseMs: 10_000, killGraceMs: 500 });
      const marker = uniqueMarker();
      const id = await stack.submit(
        pack(
          `orphan-timeout-${mode}`,
          mode,
          `    - id: daemon
      timeout: 2
      run: {uses: builtin:shell, with: {env: {M: "{{ inputs.marker }}"}, script: ${JSON.stringify(daemonize("trap '' TERM; sleep 300"))}}}
`,
        ),
        { inputs: { marker } },
      );
      await eventually(
        "the daemon running",
        async () => (await processesWithMarker(marker)).length > 0,
      );
      const run = await stack.waitFor(id, undefined, { timeoutMs: 30_000 });
      assert.equal(run.steps[0]?.state, StepState.TIMED_OUT, run.steps[0]?.reason ?? "");
      await noSurvivor(marker);
      worker.child.kill("SIGTERM");
      await worker.exited;
    });

    test("after the worker is killed with SIGKILL", async () => {
      const worker = await stack.spawnWorker({ concurrency: 1, leaseMs: 2000 });
      const marker = uniqueMarker();
      const id = await stack.submit(
        pack(
          `orphan-kill-${mode}`,
          mode,
          `    - id: daemon
      run: {uses: builtin:shell, with: {env: {M: "{{ inputs.marker }}"}, script: ${JSON.stringify(daemonize("sleep 300"))}}}
`,
        ),
        { inputs: { marker } },
      );
      // Both the background child and the setsid grandchild are up.
      await eventually(
        "the step's two daemons running",
        async () => (await processesWithMarker(marker)).length === 2,
        { timeoutMs: 30_000 },
      );
      worker.child.kill("SIGKILL");
      assert.equal((await worker.exited).signal, "SIGKILL");
      await noSurvivor(marker);
      const cancelled = await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "done" });
      assert.ok(cancelled.run !== undefined);
    });
  });
}
