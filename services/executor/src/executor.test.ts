import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { type ExecutorStack, packManifest, startExecutorStack } from "./testing/executor-stack.ts";

const pack = packManifest;

let stack: ExecutorStack;
let scratch: string;
before(async () => {
  stack = await startExecutorStack();
  scratch = await mkdtemp(join(tmpdir(), "packrun-exec-scratch-"));
});
after(() => stack.close());

describe("runs", () => {
  test("a 3-step run passes outputs from step to step and succeeds", async () => {
    const id = await stack.submit(
      pack(
        "three-steps",
        `  inputs: [{name: who, type: string, default: world}]
  steps:
    - id: greet
      run:
        uses: builtin:shell
        with:
          argv: [sh, -c, 'echo "greeting=hello $1" >> "$PACKRUN_OUTPUT"; echo said hello', sh, "{{ inputs.who }}"]
    - id: shout
      run:
        uses: builtin:shell
        with:
          script: 'echo "loud=$(echo "$G" | tr a-z A-Z)" >> "$PACKRUN_OUTPUT"'
          env: {G: "{{ steps.greet.outputs.greeting }}"}
    - id: done
      run: {uses: builtin:noop}
  outputs:
    - {name: loud, type: object, expression: "{{ steps.shout.outputs.loud }}"}
`,
      ),
      { inputs: { who: "packrun" } },
    );
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    assert.deepEqual(
      run.steps.map((step) => [step.id, step.state]),
      [
        ["greet", StepState.SUCCEEDED],
        ["shout", StepState.SUCCEEDED],
        ["done", StepState.SUCCEEDED],
      ],
    );
    assert.deepEqual(run.outputs, { loud: "HELLO PACKRUN" });
    assert.equal(run.steps[0]?.attempts.length, 1);
  });

  test("a failed step fails the run and skips the rest, visibly", async () => {
    const id = await stack.submit(
      pack(
        "fails",
        "  steps:\n    - id: ok\n      run: {uses: builtin:noop}\n    - id: bad\n      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo boom >&2; exit 3']}}\n    - id: never\n      run: {uses: builtin:noop}\n",
      ),
    );
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.FAILED);
    assert.match(run.reason, /step "bad" failed/);
    assert.deepEqual(
      run.steps.map((step) => step.state),
      [StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED],
    );
    assert.equal(run.steps[1]?.exitCode, 3);
    const dead = await stack.database.query("SELECT step_id FROM dead_letters WHERE run_id = $1", [
      id,
    ]);
    assert.deepEqual(dead.rows, [{ step_id: "bad" }]);
  });

  test("retries follow exponential backoff, visible in nextAttemptAt", async () => {
    const counter = join(scratch, "retry-count");
    const id = await stack.submit(
      pack(
        "retries",
        `  inputs: [{name: counter, type: string}]
  steps:
    - id: flaky
      retries: {maxAttempts: 3, backoffSeconds: 1, backoff: exponential}
      run:
        uses: builtin:shell
        with:
          script: 'n=$(cat "$C" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$C"; [ $n -ge 3 ]'
          env: {C: "{{ inputs.counter }}"}
`,
      ),
      { inputs: { counter } },
    );
    const seen: { attempt: number; next: number; failedAt: number }[] = [];
    await stack.waitFor(id, (run) => {
      const step = run.steps[0];
      if (
        step?.state === StepState.PENDING &&
        step.nextAttemptAt !== undefined &&
        !seen.some((s) => s.attempt === step.attempt)
      ) {
        const last = step.attempts.at(-1);
        seen.push({
          attempt: step.attempt,
          next: Number(step.nextAttemptAt.seconds) * 1000 + step.nextAttemptAt.nanos / 1e6,
          failedAt:
            last?.finishedAt === undefined
              ? 0
              : Number(last.finishedAt.seconds) * 1000 + last.finishedAt.nanos / 1e6,
        });
      }
      return run.state === RunState.SUCCEEDED || run.state === RunState.FAILED;
    });
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    assert.equal(run.steps[0]?.attempt, 3);
    assert.deepEqual(
      seen.map((s) => s.attempt),
      [1, 2],
    );
    // 1 s after the first failure, 2 s after the second (database clock; 150 ms slack).
    const waits = seen.map((s) => s.next - s.failedAt);
    assert.ok(
      Math.abs((waits[0] ?? 0) - 1000) < 150 && Math.abs((waits[1] ?? 0) - 2000) < 150,
      JSON.stringify(seen),
    );
    const started = (run.steps[0]?.attempts ?? []).map(
      (attempt) =>
        Number(attempt.startedAt?.seconds) * 1000 + (attempt.startedAt?.nanos ?? 0) / 1e6,
    );
    const [a = 0, b = 0, c = 0] = started;
    assert.ok(b - a >= 1000 && c - b >= 2000, `attempts started ${started}`);
  });

  test("a timeout ends the step as timed out", async () => {
    const id = await stack.submit(
      pack(
        "timeout",
        "  steps:\n    - id: slow\n      timeout: 1s\n      run: {uses: builtin:shell, with: {argv: [sleep, '30']}}\n",
      ),
    );
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.FAILED);
    assert.equal(run.steps[0]?.state, StepState.TIMED_OUT);
  });

  test("cancel stops a running step and cancels the rest", async () => {
    const id = await stack.submit(
      pack(
        "cancel",
        "  steps:\n    - id: long\n      run: {uses: builtin:shell, with: {argv: [sleep, '60']}}\n    - id: later\n      run: {uses: builtin:noop}\n",
      ),
    );
    await stack.waitFor(id, (run) => run.steps[0]?.state === StepState.RUNNING);
    const cancelled = await stack.client.cancelRun({
      tenant: "acme",
      runId: id,
      reason: "changed my mind",
      requestedBy: "ops",
    });
    assert.equal(cancelled.run?.state, RunState.CANCELLED);
    const run = await stack.waitFor(id, undefined, { timeoutMs: 15_000 });
    assert.deepEqual(
      run.steps.map((step) => step.state),
      [StepState.CANCELLED, StepState.CANCELLED],
    );
    assert.equal(run.reason, "changed my mind");
  });

  test("another tenant's run is not found", async () => {
    const id = await stack.submit(
      pack("tenant", "  steps:\n    - id: a\n      run: {uses: builtin:noop}\n"),
    );
    await assert.rejects(
      stack.client.getRun({ tenant: "other", runId: id }),
      (error: unknown) => ConnectError.from(error).code === Code.NotFound,
    );
    await stack.waitFor(id);
  });

  test("invalid inputs are refused with the planner's diagnostics; nothing is stored", async () => {
    const before = (
      await stack.database.query<{ n: number }>("SELECT count(*)::int AS n FROM runs")
    ).rows[0]?.n;
    await assert.rejects(
      stack.submit(
        pack(
          "needs",
          "  inputs: [{name: x, type: integer, required: true}]\n  steps:\n    - id: a\n      run: {uses: builtin:noop}\n",
        ),
      ),
      (error: unknown) => {
        const connectError = ConnectError.from(error);
        return (
          connectError.code === Code.InvalidArgument &&
          /required input "x" is missing/.test(connectError.rawMessage)
        );
      },
    );
    const after = (await stack.database.query<{ n: number }>("SELECT count(*)::int AS n FROM runs"))
      .rows[0]?.n;
    assert.equal(after, before);
  });
});

describe("blocks", () => {
  test("parallel honours maxParallel (measured) and continueOnError", async () => {
    const dir = await mkdtemp(join(scratch, "par-"));
    const id = await stack.submit(
      pack(
        "parallel",
        `  inputs: [{name: dir, type: string}]
  steps:
    - id: fan
      parallel:
        maxParallel: 2
        continueOnError: true
        steps:
${[1, 2, 3, 4, 5]
  .map(
    (n) =>
      `          - id: c${n}\n            run: {uses: builtin:shell, with: {script: 'date +%s%N > "$D/c${n}.start"; sleep 0.4; date +%s%N > "$D/c${n}.end"; [ ${n} -ne 3 ]', env: {D: "{{ inputs.dir }}"}}}`,
  )
  .join("\n")}
    - id: after
      run: {uses: builtin:noop}
`,
      ),
      { inputs: { dir } },
    );
    const run = await stack.waitFor(id, undefined, { timeoutMs: 30_000 });
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    const fan = run.steps.find((step) => step.id === "fan");
    assert.match(fan?.reason ?? "", /1 of 5 children failed \(continueOnError\)/);
    assert.equal(run.steps.find((step) => step.id === "c3")?.state, StepState.FAILED);
    const files = await readdir(dir);
    const intervals = await Promise.all(
      [1, 2, 3, 4, 5].map(
        async (n) =>
          [
            Number(await readFile(join(dir, `c${n}.start`), "utf8")),
            Number(await readFile(join(dir, `c${n}.end`), "utf8")),
          ] as const,
      ),
    );
    let maxOverlap = 0;
    for (const [start] of intervals)
      maxOverlap = Math.max(
        maxOverlap,
        intervals.filter(([s, e]) => s <= start && start < e).length,
      );
    assert.equal(files.length, 10);
    assert.equal(maxOverlap, 2, `intervals ${JSON.stringify(intervals)}`);
  });

  test("without continueOnError a failed child stops the block and the run", async () => {
    const id = await stack.submit(
      pack(
        "stop",
        `  steps:
    - id: block
      parallel:
        maxParallel: 1
        steps:
          - id: first
            run: {uses: builtin:shell, with: {argv: ["false"]}}
          - id: second
            run: {uses: builtin:noop}
    - id: after
      run: {uses: builtin:noop}
`,
      ),
    );
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.FAILED);
    const states = Object.fromEntries(run.steps.map((step) => [step.id, step.state]));
    assert.deepEqual(states, {
      block: StepState.FAILED,
      after: StepState.SKIPPED,
      first: StepState.FAILED,
      second: StepState.SKIPPED,
    });
  });

  test("a map expands run-time items from an earlier step's output", async () => {
    const id = await stack.submit(
      pack(
        "map",
        `  steps:
    - id: discover
      run: {uses: builtin:shell, with: {script: 'echo "images=[\\"a\\",\\"b\\",\\"c\\"]" >> "$PACKRUN_OUTPUT"'}}
    - id: scan
      map:
        items: "{{ parseJson(steps.discover.outputs.images) }}"
        step:
          id: one
          run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "seen=$1" >> "$PACKRUN_OUTPUT"', sh, "{{ item }}"]}}
`,
      ),
    );
    const run = await stack.waitFor(id);
    assert.equal(
      run.state,
      RunState.FAILED,
      "parseJson is not a CEL function: the failure must be clear",
    );
    assert.match(run.steps.find((step) => step.id === "scan")?.reason ?? "", /parseJson/);
  });
});

describe("gates", () => {
  const gated = (required: number, expires = "") =>
    pack(
      "gated",
      `  approvals: [{id: release, required: ${required}${expires}}]
  steps:
    - id: build
      run: {uses: builtin:noop}
    - id: approve
      gate: {approval: {id: release, message: ship it?}}
    - id: deploy
      run: {uses: builtin:noop}
`,
    );

  test("an approval gate pauses the run until enough distinct approvers agree", async () => {
    const id = await stack.submit(gated(2));
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    assert.equal(waiting.gates[0]?.requiredApprovals, 2);
    const planHash = waiting.planHash;
    const first = await stack.client.decideApproval({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      planHash,
      approver: "alice",
      approve: true,
    });
    assert.equal(first.recorded, true);
    const again = await stack.client.decideApproval({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      planHash,
      approver: "alice",
      approve: true,
    });
    assert.equal(again.recorded, false, "the same approver counts once");
    assert.equal(
      (await stack.client.getRun({ tenant: "acme", runId: id })).run?.state,
      RunState.AWAITING_APPROVAL,
    );
    await assert.rejects(
      stack.client.decideApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash: "sha256:forged",
        approver: "mallory",
        approve: true,
      }),
      (error: unknown) => ConnectError.from(error).code === Code.PermissionDenied,
    );
    await stack.client.decideApproval({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      planHash,
      approver: "bob",
      approve: true,
    });
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    assert.deepEqual(
      run.gates[0]?.decisions.map((decision) => decision.approver),
      ["alice", "bob"],
    );
  });

  test("approving a gate that is the run's last step succeeds the run", async () => {
    const id = await stack.submit(
      pack(
        "gate-last",
        "  approvals: [{id: release}]\n  steps:\n    - id: build\n      run: {uses: builtin:noop}\n    - id: approve\n      gate: {approval: {id: release}}\n",
      ),
    );
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    const decided = await stack.client.decideApproval({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      planHash: waiting.planHash,
      approver: "alice",
      approve: true,
    });
    assert.equal(decided.recorded, true);
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  });

  test("50 concurrent identical approvals make exactly one decision", async () => {
    const id = await stack.submit(gated(1));
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        stack.client.decideApproval({
          tenant: "acme",
          runId: id,
          approvalId: "release",
          planHash: waiting.planHash,
          approver: "carol",
          approve: true,
        }),
      ),
    );
    assert.equal(results.filter((result) => result.recorded).length, 1);
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED);
    const events = await stack.database.query(
      "SELECT count(*)::int AS n FROM outbox WHERE run_id = $1 AND event->>'type' = 'gate.approved'",
      [id],
    );
    assert.deepEqual(events.rows, [{ n: 1 }]);
  });

  test("a rejection ends the run", async () => {
    const id = await stack.submit(gated(1));
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    await stack.client.decideApproval({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      planHash: waiting.planHash,
      approver: "dave",
      approve: false,
      comment: "not today",
    });
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.FAILED);
    assert.equal(run.steps[1]?.state, StepState.REJECTED);
    assert.match(run.steps[1]?.reason ?? "", /rejected by dave: not today/);
  });

  test("an unanswered approval expires", async () => {
    const id = await stack.submit(gated(1, ", expiresAfter: 1s"));
    const run = await stack.waitFor(id, undefined, { timeoutMs: 15_000 });
    assert.equal(run.state, RunState.FAILED);
    assert.equal(run.steps[1]?.state, StepState.EXPIRED);
  });

  for (const [label, threshold, expected] of [
    ["passes", 5, RunState.SUCCEEDED],
    ["denies", 1, RunState.FAILED],
  ] as const) {
    test(`a policy gate ${label}`, async () => {
      const id = await stack.submit(
        pack(
          `policy-${label}`,
          `  inputs: [{name: replicas, type: integer, default: 3}]
  policies:
    - {name: small-enough, expression: "inputs.replicas <= parameters.max && run.packName.startsWith('policy')"}
  steps:
    - id: check
      gate: {policy: {policy: small-enough, parameters: {max: ${threshold}}}}
    - id: deploy
      run: {uses: builtin:noop}
`,
        ),
      );
      const run = await stack.waitFor(id);
      assert.equal(run.state, expected, run.reason);
      assert.equal(
        run.steps[0]?.state,
        expected === RunState.SUCCEEDED ? StepState.SUCCEEDED : StepState.FAILED,
      );
      assert.equal(
        run.steps[0]?.outputs?.decision,
        expected === RunState.SUCCEEDED ? "allow" : "deny",
      );
    });
  }
});
