/**
 * Issue 8, item 5 (slow suite): PostgreSQL is restarted, `fast` (clean shutdown) and then
 * `immediate` (no shutdown checkpoint, like a crash), under the whole system (planner, executor
 * with its worker, evidence, gateway: the embedded stack on the test servers) while runs execute.
 *
 * Checked: every service's pool recovers by itself; every run finishes and every step succeeds
 * exactly once; what was acknowledged before the restart (submissions answered 201, an approval
 * answered `recorded: true` just before the crash) is still there; every output line printed
 * while the database was down reaches the evidence log; submissions made while it is down are
 * refused with a retryable 503 or stored; each run's log is gapless and it is finalised.
 *
 * Runs only in the slow suite (`npm run test:slow`): restarting the one test server
 * would break every other test file running at the same time. The test server runs with
 * synchronous_commit=off (fast tests); an immediate shutdown may then lose the last commits by
 * design, so this file turns it on for its duration.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RestClient } from "../../services/gateway/src/testing/rest-client.ts";
import { restClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  eventsWhen,
  manifest,
  type RunJson,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  waitForRun,
} from "../security/support/stack.ts";
import { adminQuery, restartPostgres, slowSkip } from "./servers.ts";

const work = manifest(
  "pg-restart",
  `  inputs: [{name: n, type: string}]
  steps:
    - id: tick
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'i=1; while [ $i -le 40 ]; do echo "tick $i"; i=$((i+1)); sleep 0.1; done']}}
    - id: after
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "done $1"', sh, "{{ inputs.n }}"]}}
`,
);

const gated = manifest(
  "pg-restart-gated",
  `  approvals: [{id: go}]
  steps:
    - id: gate
      gate: {approval: {id: go}}
    - id: after
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo approved']}}
`,
);

/** Answers to submissions made while the database was down, and errors nobody handled. */
const outageAnswers: string[] = [];
const unhandled: string[] = [];

describe("PostgreSQL restarts under load", { skip: slowSkip !== false }, () => {
  let stack: SecurityStack;
  let alice: RestClient;
  // Every service of the stack lives in this process: an error event nobody listens to
  // would crash a real service process. Record it (checked below) instead of failing the file.
  const onUncaught = (error: Error) => {
    unhandled.push(`${(error as { code?: string }).code ?? ""} ${error.message}`);
  };
  beforeAll(async () => {
    process.on("uncaughtException", onUncaught);
    await adminQuery("ALTER SYSTEM SET synchronous_commit = on");
    await adminQuery("SELECT pg_reload_conf()");
    stack = await startSecurityStack();
    alice = await stack.client();
  });
  afterAll(async () => {
    process.off("uncaughtException", onUncaught);
    await stack.close();
    await adminQuery("ALTER SYSTEM RESET synchronous_commit");
    await adminQuery("SELECT pg_reload_conf()");
  });

  /** Submits while the database may be down: 201, or a refusal (recorded, checked below). */
  async function submitDuringOutage(n: string): Promise<RunJson | undefined> {
    const response = await alice
      .post<{ run: RunJson; code?: string }>("/api/runs", { manifest: work, inputs: { n } })
      .catch(() => undefined);
    if (response === undefined) return undefined;
    if (response.status === 201) return response.body.run;
    outageAnswers.push(`${response.status} ${response.body.code}`);
    return undefined;
  }

  async function checkRun(id: string, expect: { lines?: number } = {}): Promise<void> {
    const run = await waitForRun(alice, id, undefined, 90_000);
    assert.equal(run.state, "succeeded", `${id}: ${run.reason} ${JSON.stringify(run.steps)}`);
    for (const step of run.steps)
      assert.equal(
        step.attempts.filter((a) => a.state === "succeeded").length,
        1,
        `${id} ${step.id} succeeded once`,
      );
    const events = await eventsWhen(
      stack.url,
      await stack.mintToken(),
      id,
      (log) => log.some((e) => e.type === "run.succeeded"),
      60_000,
    );
    assert.deepEqual(
      events.map((e) => e.sequence),
      events.map((_, i) => i + 1),
      `${id}: gapless`,
    );
    if (expect.lines !== undefined) {
      const ticks = events
        .filter((e) => e.type === "log.stdout" && e.stepId === "tick")
        .map((e) => e.message);
      // A retried attempt prints its lines again; every line is there at least once, in order.
      for (let i = 1; i <= expect.lines; i++)
        assert.ok(ticks.includes(`tick ${i}`), `${id}: "tick ${i}" is in the log`);
    }
    const deadline = Date.now() + 30_000;
    while ((await alice.get(`/api/runs/${id}/attestation`)).status !== 200) {
      assert.ok(Date.now() < deadline, `${id} was never finalised`);
      await sleep(200);
    }
  }

  for (const mode of ["fast", "immediate"] as const) {
    test(`restart -m ${mode} while runs print and a gate was just approved`, async () => {
      const acknowledged = await Promise.all(
        [1, 2, 3].map((i) => submitRun(alice, { manifest: work, inputs: { n: `${mode}-${i}` } })),
      );
      const gate = await waitForRun(
        alice,
        (await submitRun(alice, { manifest: gated })).id,
        (run) => run.state === "awaiting-approval",
      );
      // Runs are printing; the approval is acknowledged right before the server goes down.
      await waitForRun(alice, acknowledged[0]?.id ?? "", (run) =>
        run.steps.some((s) => s.id === "tick" && s.state === "running"),
      );
      const approver = restClient(
        stack.url,
        await stack.mintToken({
          subject: "carol",
          approval: { runId: gate.id, gateId: "go", planHash: gate.planHash },
        }),
      );
      const approval = await approver.post<{ recorded: boolean }>(
        `/api/runs/${gate.id}/approve`,
        {},
      );
      assert.equal(approval.status, 200);
      assert.equal(approval.body.recorded, true);

      const restarting = restartPostgres(mode, 3000);
      let during: RunJson | undefined;
      try {
        await sleep(1000);
        during = await submitDuringOutage(`${mode}-during`);
      } finally {
        await restarting;
      }
      const later = await submitRun(alice, { manifest: work, inputs: { n: `${mode}-after` } });

      for (const run of acknowledged) await checkRun(run.id, { lines: 40 });
      if (during !== undefined) await checkRun(during.id);
      await checkRun(later.id);
      const approved = await waitForRun(alice, gate.id, undefined, 60_000);
      assert.equal(approved.state, "succeeded", "the acknowledged approval survived the restart");
      assert.deepEqual(
        approved.gates[0]?.decisions.map((d) => d.approver),
        ["carol"],
      );
      // The gateway, planner, executor and evidence all answer normally again.
      const ready = await fetch(`${stack.url}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
    });
  }

  test("a submission while the database is down is refused as retryable (503), not 500", () => {
    for (const answer of outageAnswers) assert.match(answer, /^503 UNAVAILABLE/);
  });

  test("no error event is left unhandled when the database restarts", () => {
    assert.deepEqual(unhandled, []);
  });
});
