import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { outboxEventsSql } from "./store/run-events.ts";
import { boundApproval } from "./testing/bound-approval.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "./testing/executor-stack.ts";

const pack = packManifest;

let stack: ExecutorStack;
beforeAll(async () => {
  stack = await startExecutorStack();
});
afterAll(() => stack.close());

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
    const counter = join(await stepSharedDir("retry-"), "count");
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
    const dir = await stepSharedDir("par-");
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
    const first = await stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash,
        approver: "alice",
        approve: true,
      }),
    );
    assert.equal(first.recorded, true);
    const again = await stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash,
        approver: "alice",
        approve: true,
      }),
    );
    assert.equal(again.recorded, false, "the same approver counts once");
    assert.equal(
      (await stack.client.getRun({ tenant: "acme", runId: id })).run?.state,
      RunState.AWAITING_APPROVAL,
    );
    await assert.rejects(
      stack.client.decideApproval(
        boundApproval({
          tenant: "acme",
          runId: id,
          approvalId: "release",
          planHash: "sha256:forged",
          approver: "mallory",
          approve: true,
        }),
      ),
      (error: unknown) => ConnectError.from(error).code === Code.PermissionDenied,
    );
    await stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash,
        approver: "bob",
        approve: true,
      }),
    );
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
    const decided = await stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash: waiting.planHash,
        approver: "alice",
        approve: true,
      }),
    );
    assert.equal(decided.recorded, true);
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  });

  /** How often the run's outbox holds events matching `where` (SQL over `event`). */
  const countEvents = async (runId: string, where: string, params: unknown[] = []) =>
    (
      await stack.database.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 AND ${where}`,
        [runId, ...params],
      )
    ).rows[0]?.n;

  /** Exactly one gate transition: awaiting-approval -> pending once, the run resumed once. */
  const assertOneGateTransition = async (runId: string) => {
    assert.equal(
      await countEvents(
        runId,
        "event->>'type' = 'step.pending' AND event->>'stepId' = 'approve' AND event->'metadata'->>'from' = 'awaiting-approval'",
      ),
      1,
    );
    assert.equal(await countEvents(runId, "event->>'type' = 'run.awaiting-approval'"), 1);
    // Once when the run started, once when the gate let it go on.
    assert.equal(await countEvents(runId, "event->>'type' = 'run.running'"), 2);
  };

  test("50 concurrent identical approvals make exactly one decision", async () => {
    const id = await stack.submit(gated(1));
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    // Every call succeeds: one records the decision, the others are idempotent repeats.
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        stack.client.decideApproval(
          boundApproval({
            tenant: "acme",
            runId: id,
            approvalId: "release",
            planHash: waiting.planHash,
            approver: "carol",
            approve: true,
          }),
        ),
      ),
    );
    assert.equal(results.filter((result) => result.recorded).length, 1);
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED);
    assert.equal(await countEvents(id, "event->>'type' = 'gate.approved'"), 1);
    assert.equal(await countEvents(id, "event->>'type' = 'gate.approval_refused'"), 0);
    const decisions = await stack.database.query(
      "SELECT approver FROM gate_decisions WHERE run_id = $1",
      [id],
    );
    assert.deepEqual(decisions.rows, [{ approver: "carol" }]);
    await assertOneGateTransition(id);
  });

  test("50 concurrent approvals by 50 approvers on a gate requiring 2 make exactly one transition", async () => {
    const id = await stack.submit(gated(2));
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, index) =>
        stack.client.decideApproval(
          boundApproval({
            tenant: "acme",
            runId: id,
            approvalId: "release",
            planHash: waiting.planHash,
            approver: `approver-${index}`,
            approve: true,
          }),
        ),
      ),
    );
    const recorded = results.filter(
      (result) => result.status === "fulfilled" && result.value.recorded,
    );
    assert.equal(recorded.length, 2);
    // The others came after the gate had opened: refused, as the gate no longer waits.
    const refused = results.filter((result) => result.status === "rejected");
    assert.equal(refused.length, 48);
    for (const result of refused)
      assert.equal(ConnectError.from(result.reason).code, Code.FailedPrecondition);
    const run = await stack.waitFor(id);
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    assert.equal(run.gates[0]?.decisions.length, 2);
    const decisions = await stack.database.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM gate_decisions WHERE run_id = $1",
      [id],
    );
    assert.deepEqual(decisions.rows, [{ n: 2 }]);
    assert.equal(await countEvents(id, "event->>'type' = 'gate.approved'"), 2);
    // Refusals while the run still ran are in its trail; later ones only in the log.
    assert.ok(((await countEvents(id, "event->>'type' = 'gate.approval_refused'")) ?? 0) <= 48);
    await assertOneGateTransition(id);
  });

  test("gates report their approval's grants (empty: anyone) and the executor enforces them", async () => {
    const id = await stack.submit(
      pack(
        "grants",
        `  approvals:
    - {id: release, grants: [release-managers, sre]}
    - {id: open}
  steps:
    - id: first
      gate: {approval: {id: release}}
    - id: second
      gate: {approval: {id: open}}
`,
      ),
    );
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    assert.deepEqual(
      waiting.gates.map((gate) => [gate.gateRef, gate.grants]),
      [
        ["release", ["release-managers", "sre"]],
        ["open", []],
      ],
    );
    // The executor enforces them: an approver holding none of them is refused.
    await assert.rejects(
      stack.client.decideApproval(
        boundApproval({
          tenant: "acme",
          runId: id,
          approvalId: "release",
          planHash: waiting.planHash,
          approver: "mallory",
          approve: true,
          groups: ["developers"],
        }),
      ),
      (error: unknown) => ConnectError.from(error).code === Code.PermissionDenied,
    );
    const decided = await stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash: waiting.planHash,
        approver: "alice",
        approve: true,
        groups: ["sre"],
      }),
    );
    assert.deepEqual(decided.gate?.grants, ["release-managers", "sre"]);
    await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "done" });
  });

  test("a rejection ends the run", async () => {
    const id = await stack.submit(gated(1));
    const waiting = await stack.waitFor(id, (run) => run.state === RunState.AWAITING_APPROVAL);
    await stack.client.decideApproval(
      boundApproval({
        tenant: "acme",
        runId: id,
        approvalId: "release",
        planHash: waiting.planHash,
        approver: "dave",
        approve: false,
        comment: "not today",
      }),
    );
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

describe("approval refusals", () => {
  const twoApprovers = pack(
    "refusals",
    `  approvals: [{id: release, required: 2}]
  steps:
    - id: approve
      gate: {approval: {id: release}}
    - id: deploy
      run: {uses: builtin:noop}
`,
  );

  interface StoredEvent {
    type: string;
    level: string;
    stepId?: string;
    message: string;
    metadata: Record<string, unknown>;
    idempotencyKey: string;
  }

  const refusals = async (runId: string) =>
    (
      await stack.database.query<{ event: StoredEvent }>(
        `SELECT event FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 AND event->>'type' = 'gate.approval_refused' ORDER BY id`,
        [runId],
      )
    ).rows.map((row) => row.event);

  const awaiting = async () => {
    const id = await stack.submit(twoApprovers);
    const run = await stack.waitFor(id, (each) => each.state === RunState.AWAITING_APPROVAL);
    return { id, planHash: run.planHash };
  };

  const codeOf = (error: unknown) => ConnectError.from(error).code;

  test("a stale plan hash, an unknown gate and a conflicting decision are refused and recorded", async () => {
    const { id, planHash } = await awaiting();
    const decide = (fields: { approvalId?: string; planHash?: string; approve?: boolean }) =>
      stack.client.decideApproval(
        boundApproval({
          tenant: "acme",
          runId: id,
          approvalId: fields.approvalId ?? "release",
          planHash: fields.planHash ?? planHash,
          approver: "mallory",
          approve: fields.approve ?? true,
        }),
      );
    for (let i = 0; i < 2; i++)
      await assert.rejects(decide({ planHash: "sha256:forged" }), (error: unknown) => {
        assert.equal(codeOf(error), Code.PermissionDenied);
        return true;
      });
    await assert.rejects(decide({ approvalId: "nope" }), (error: unknown) => {
      assert.equal(codeOf(error), Code.FailedPrecondition);
      return true;
    });
    assert.equal((await decide({})).recorded, true);
    await assert.rejects(decide({ approve: false }), (error: unknown) => {
      assert.equal(codeOf(error), Code.FailedPrecondition);
      return true;
    });

    const events = await refusals(id);
    assert.deepEqual(
      events.map((event) => [event.level, event.stepId ?? null, event.metadata]),
      [
        ["warn", "approve", { approver: "mallory", approvalId: "release", code: "APPROVAL_STALE" }],
        ["warn", "approve", { approver: "mallory", approvalId: "release", code: "APPROVAL_STALE" }],
        // No such gate: no step to name.
        ["warn", null, { approver: "mallory", approvalId: "nope", code: "GATE_NOT_AWAITING" }],
        [
          "warn",
          "approve",
          { approver: "mallory", approvalId: "release", code: "GATE_NOT_AWAITING" },
        ],
      ],
    );
    assert.match(events[0]?.message ?? "", /mallory.*refused \(APPROVAL_STALE\).*sha256:forged/);
    assert.match(events[3]?.message ?? "", /mallory.*already approved/);
    // Repeated identical refusals are distinct events: none is deduplicated away.
    assert.equal(new Set(events.map((event) => event.idempotencyKey)).size, 4);
    // The refusals changed nothing else: one decision, still waiting.
    const run = await stack.waitFor(id, () => true);
    assert.equal(run.state, RunState.AWAITING_APPROVAL);
    assert.deepEqual(
      run.gates[0]?.decisions.map((decision) => [decision.approver, decision.approved]),
      [["mallory", true]],
    );
    await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "done" });
  });

  test("another tenant's run is not found and nothing is recorded", async () => {
    const { id, planHash } = await awaiting();
    await assert.rejects(
      stack.client.decideApproval(
        boundApproval({
          tenant: "other",
          runId: id,
          approvalId: "release",
          planHash,
          approver: "eve",
          approve: true,
        }),
      ),
      (error: unknown) => codeOf(error) === Code.NotFound,
    );
    await assert.rejects(
      stack.client.recordApprovalRefusal({
        tenant: "other",
        runId: id,
        approvalId: "release",
        approver: "eve",
        code: "PERMISSION_DENIED",
        reason: "no grant",
      }),
      (error: unknown) => codeOf(error) === Code.NotFound,
    );
    for (const runId of ["not-a-uuid", "00000000-0000-4000-8000-000000000000"])
      await assert.rejects(
        stack.client.recordApprovalRefusal({
          tenant: "acme",
          runId,
          approvalId: "release",
          approver: "eve",
          code: "PERMISSION_DENIED",
        }),
        (error: unknown) => codeOf(error) === Code.NotFound,
      );
    assert.deepEqual(await refusals(id), []);
    await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "done" });
  });

  test("RecordApprovalRefusal records the gateway's refusal at the gate", async () => {
    const { id } = await awaiting();
    const response = await stack.client.recordApprovalRefusal({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      approver: "trent",
      code: "PERMISSION_DENIED",
      reason: "token lacks a grant of release",
    });
    assert.equal(response.recorded, true);
    const unknownGate = await stack.client.recordApprovalRefusal({
      tenant: "acme",
      runId: id,
      approvalId: "",
      approver: "trent",
      code: "APPROVAL_TOKEN_MISMATCH",
      reason: "",
    });
    assert.equal(unknownGate.recorded, true);
    const events = await refusals(id);
    assert.deepEqual(
      events.map((event) => [event.level, event.stepId ?? null, event.metadata, event.message]),
      [
        [
          "warn",
          "approve",
          { approver: "trent", approvalId: "release", code: "PERMISSION_DENIED" },
          'approval by trent at gate "release" refused (PERMISSION_DENIED): token lacks a grant of release',
        ],
        [
          "warn",
          null,
          { approver: "trent", approvalId: "", code: "APPROVAL_TOKEN_MISMATCH" },
          "approval by trent refused (APPROVAL_TOKEN_MISMATCH)",
        ],
      ],
    );
    await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "done" });
  });

  test("RecordApprovalRefusal validates its inputs", async () => {
    const { id } = await awaiting();
    const valid = {
      tenant: "acme",
      runId: id,
      approvalId: "release",
      approver: "trent",
      code: "PERMISSION_DENIED",
      reason: "no",
    };
    for (const invalid of [
      { approver: "" },
      { approver: "x".repeat(513) },
      { approver: "evil\nline" },
      { approvalId: "x".repeat(129) },
      { code: "" },
      { code: "not a code" },
      { code: "lower_case" },
      { reason: "x".repeat(4097) },
      { reason: "nul\u0000" },
      { tenant: "" },
      { tenant: "bad tenant" },
    ]) {
      await assert.rejects(
        stack.client.recordApprovalRefusal({ ...valid, ...invalid }),
        (error: unknown) => codeOf(error) === Code.InvalidArgument,
        JSON.stringify(invalid),
      );
    }
    // SQL-looking input is data, not SQL.
    const sneaky = await stack.client.recordApprovalRefusal({
      ...valid,
      approvalId: "x' OR '1'='1",
      approver: "robert'); DROP TABLE outbox; --",
    });
    assert.equal(sneaky.recorded, true);
    const events = await refusals(id);
    assert.deepEqual(
      events.map((event) => [event.stepId ?? null, event.metadata.approver]),
      [[null, "robert'); DROP TABLE outbox; --"]],
    );
    await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "done" });
  });

  test("refusals for a run that already ended are only logged", async () => {
    const { id, planHash } = await awaiting();
    await stack.client.cancelRun({ tenant: "acme", runId: id, reason: "stop" });
    await stack.waitFor(id);
    await assert.rejects(
      stack.client.decideApproval(
        boundApproval({
          tenant: "acme",
          runId: id,
          approvalId: "release",
          planHash: "sha256:forged",
          approver: "mallory",
          approve: true,
        }),
      ),
      (error: unknown) => codeOf(error) === Code.PermissionDenied,
    );
    await assert.rejects(
      stack.client.decideApproval(
        boundApproval({
          tenant: "acme",
          runId: id,
          approvalId: "release",
          planHash,
          approver: "alice",
          approve: true,
        }),
      ),
      (error: unknown) => codeOf(error) === Code.FailedPrecondition,
    );
    const response = await stack.client.recordApprovalRefusal({
      tenant: "acme",
      runId: id,
      approvalId: "release",
      approver: "trent",
      code: "PERMISSION_DENIED",
      reason: "too late anyway",
    });
    assert.equal(response.recorded, false);
    assert.deepEqual(await refusals(id), []);
    // Nothing follows the run's terminal event.
    const last = (
      await stack.database.query<{ type: string }>(
        `SELECT event->>'type' AS type FROM (${outboxEventsSql}) AS outbox WHERE run_id = $1 ORDER BY id DESC, n DESC LIMIT 1`,
        [id],
      )
    ).rows[0];
    assert.equal(last?.type, "run.cancelled");
  });
});
