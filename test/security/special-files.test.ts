/**
 * Issue 19, break 1: a step replaces a file the worker reads after it (`$PACKRUN_OUTPUT`, a
 * declared artifact, GNU time's report) with a FIFO. Opening a FIFO for reading blocks until a
 * writer appears, which never happens once the step is dead: the run stayed `running` past its
 * timeout, cancelling did not free the slot, and a handful of such runs wedged every worker slot
 * (and Node's file-system thread pool) so that another tenant's `echo` waited for minutes.
 *
 * Now each such run fails promptly with a reason naming the file, and another tenant's run
 * keeps finishing while they do.
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, test } from "vitest";
import { runtimeSupport } from "../../services/executor/src/runtime/support.ts";
import type { RestClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  manifest,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  timed,
  waitForRun,
} from "./support/stack.ts";

/**
 * Where each step's cgroup measures CPU and memory, steps run without GNU time and nothing reads
 * `.packrun/time-report` any more: that attack then has no target (a FIFO there is never opened).
 */
const support = await runtimeSupport();
const gnuTimeRuns = !(support.cgroups && support.cgroupMetrics) && support.time !== null;

/** Each attack: the script that plants the FIFO, and what the failure reason must name. */
const allAttacks = [
  {
    name: "output",
    script: 'rm -f "$PACKRUN_OUTPUT"; mkfifo "$PACKRUN_OUTPUT"',
    names: "$PACKRUN_OUTPUT",
  },
  { name: "artifact", script: "mkfifo report.txt", names: 'artifact "report"' },
  {
    name: "time-report",
    script: 'rm -f "$HOME/.packrun/time-report"; mkfifo "$HOME/.packrun/time-report"',
    names: "time report",
  },
  { name: "symlink-out", script: "ln -s /etc/passwd report.txt", names: 'artifact "report"' },
  { name: "directory", script: "mkdir report.txt", names: 'artifact "report"' },
] as const;
const attacks = allAttacks.filter((attack) => attack.name !== "time-report" || gnuTimeRuns);

function fifoPack(attack: (typeof allAttacks)[number]): string {
  return manifest(
    `fifo-${attack.name}`,
    `  steps:
    - id: plant
      timeout: 3
      run:
        uses: builtin:shell
        with: {script: ${JSON.stringify(attack.script)}}
        artifacts: [{name: report, path: report.txt}]
`,
  );
}

const echoPack = manifest(
  "echo",
  `  steps:
    - {id: hello, run: {uses: builtin:shell, with: {argv: [echo, hello]}}}
`,
);

let stack: SecurityStack;
let alice: RestClient;
let bob: RestClient;
beforeAll(async () => {
  stack = await startSecurityStack();
  alice = await stack.client();
  bob = await stack.client({ tenant: "bobco", subject: "bob" });
});
afterAll(() => stack.close());

test("a FIFO, symlink or directory where the worker reads a step's files fails the run promptly", async () => {
  for (const attack of attacks) {
    const { ms, value: finished } = await timed(async () => {
      const run = await submitRun(alice, { manifest: fifoPack(attack) });
      return waitForRun(alice, run.id, undefined, 20_000);
    });
    assert.equal(finished.state, "failed", `${attack.name}: ${JSON.stringify(finished.steps)}`);
    const step = finished.steps.find((s) => s.id === "plant");
    const reason = step?.reason ?? "";
    assert.ok(reason.includes(attack.names), `${attack.name}: reason names the file: ${reason}`);
    assert.match(reason, /not a regular file|outside the workdir/, `${attack.name}: ${reason}`);
    assert.ok(ms < 15_000, `${attack.name}: ended after ${Math.round(ms)} ms`);
  }
});

test.skipIf(gnuTimeRuns)(
  "without GNU time, a FIFO planted as its report is never opened",
  async () => {
    const attack = allAttacks.find((candidate) => candidate.name === "time-report");
    assert.ok(attack);
    const { ms, value: finished } = await timed(async () => {
      const run = await submitRun(alice, { manifest: fifoPack(attack) });
      return waitForRun(alice, run.id, undefined, 20_000);
    });
    const reason = finished.steps.find((s) => s.id === "plant")?.reason ?? "";
    // It fails for its missing artifact only, and promptly: the FIFO itself was never opened.
    assert.equal(finished.state, "failed", JSON.stringify(finished.steps));
    assert.ok(reason.includes('artifact "report"') && !reason.includes("time report"), reason);
    assert.ok(ms < 15_000, `ended after ${Math.round(ms)} ms`);
  },
);

test("nine FIFO runs at once do not wedge the workers: another tenant's echo still runs", async () => {
  const fifoRuns = [];
  for (let n = 0; n < 9; n++) {
    const attack = attacks[n % 3] as (typeof attacks)[number];
    fifoRuns.push(await submitRun(alice, { manifest: fifoPack(attack) }));
  }
  const { ms, value: echoed } = await timed(async () => {
    const run = await submitRun(bob, { manifest: echoPack });
    return waitForRun(bob, run.id, undefined, 40_000);
  });
  assert.equal(echoed.state, "succeeded");
  assert.ok(ms < 30_000, `the other tenant's echo took ${Math.round(ms)} ms`);
  for (const run of fifoRuns) {
    const finished = await waitForRun(alice, run.id, undefined, 40_000);
    assert.equal(finished.state, "failed", JSON.stringify(finished.steps));
  }
});
