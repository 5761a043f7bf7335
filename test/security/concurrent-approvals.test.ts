/**
 * Issue 8, item 18: 50 concurrent identical approvals through the gateway make exactly one
 * transition: one decision recorded (`recorded: true` exactly once), one `gate.approved` event,
 * the gate passed once and the step after it run once. Since issue 19 an approval token is
 * single-use, so the same token 50 times decides once and is refused 49 times; the same
 * approver with 50 tokens is still counted once.
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, test } from "vitest";
import { restClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  eventsWhen,
  gatedManifest,
  type RunJson,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  waitForRun,
} from "./support/stack.ts";

const gated = (required: number) =>
  gatedManifest(`concurrent-approvals-${required}`, {
    required,
    after: `{uses: builtin:shell, with: {argv: [sh, -c, "echo ran once"]}}`,
  });

let stack: SecurityStack;
beforeAll(async () => {
  stack = await startSecurityStack();
});
afterAll(() => stack.close());

async function awaitingRun(required: number): Promise<RunJson> {
  const alice = await stack.client();
  const run = await submitRun(alice, { manifest: gated(required) });
  return waitForRun(alice, run.id, (r) => r.state === "awaiting-approval");
}

test("50 concurrent identical approvals: recorded once, one transition", async () => {
  const run = await awaitingRun(1);
  const approver = restClient(
    stack.url,
    await stack.mintToken({
      subject: "carol",
      approval: { runId: run.id, gateId: "release", planHash: run.planHash },
    }),
  );
  const answers = await Promise.all(
    Array.from({ length: 50 }, () =>
      approver.post<{ recorded: boolean; code?: string }>(`/api/runs/${run.id}/approve`, {
        comment: "same",
      }),
    ),
  );
  // One token, used 50 times at once: it is single-use (issue 19), so exactly one use decides
  // and the other 49 are refused as reuse.
  const decided = answers.filter((a) => a.status === 200);
  assert.equal(decided.length, 1, JSON.stringify(answers.map((a) => [a.status, a.body.code])));
  assert.equal(decided[0]?.body.recorded, true, "recorded: true exactly once");
  for (const answer of answers.filter((a) => a.status !== 200))
    assert.equal(answer.body.code, "APPROVAL_TOKEN_REUSED", JSON.stringify(answer.body));

  const alice = await stack.client();
  const finished = await waitForRun(alice, run.id);
  assert.equal(finished.state, "succeeded");
  assert.deepEqual(
    finished.gates.map((gate) => gate.decisions.map((d) => d.approver)),
    [["carol"]],
  );
  assert.equal(finished.steps.find((s) => s.id === "after")?.attempts.length, 1);
  const events = await eventsWhen(stack.url, await stack.mintToken(), run.id, (log) =>
    log.some((event) => event.type === "run.succeeded"),
  );
  assert.equal(events.filter((e) => e.type === "gate.approved").length, 1);
  assert.equal(events.filter((e) => e.type === "step.succeeded" && e.stepId === "gate").length, 1);
  assert.equal(events.filter((e) => e.type === "log.stdout" && e.stepId === "after").length, 1);
});

test("one approver with 50 tokens at once: counted once, one transition", async () => {
  const run = await awaitingRun(1);
  const binding = { runId: run.id, gateId: "release", planHash: run.planHash };
  const clients = await Promise.all(
    Array.from({ length: 50 }, async () =>
      restClient(stack.url, await stack.mintToken({ subject: "carol", approval: binding })),
    ),
  );
  const answers = await Promise.all(
    clients.map((client) =>
      client.post<{ recorded: boolean }>(`/api/runs/${run.id}/approve`, { comment: "same" }),
    ),
  );
  assert.deepEqual(
    [...new Set(answers.map((a) => a.status))],
    [200],
    JSON.stringify(answers.filter((a) => a.status !== 200).map((a) => a.body)),
  );
  assert.equal(answers.filter((a) => a.body.recorded).length, 1, "recorded: true exactly once");
  const finished = await waitForRun(await stack.client(), run.id);
  assert.equal(finished.state, "succeeded");
  const events = await eventsWhen(stack.url, await stack.mintToken(), run.id, (log) =>
    log.some((event) => event.type === "run.succeeded"),
  );
  assert.equal(events.filter((e) => e.type === "gate.approved").length, 1);
  assert.equal(events.filter((e) => e.type === "log.stdout" && e.stepId === "after").length, 1);
});

test("50 distinct approvers at once on a gate needing 3: exactly 3 counted, the gate passes once", async () => {
  const run = await awaitingRun(3);
  const binding = { runId: run.id, gateId: "release", planHash: run.planHash };
  const clients = await Promise.all(
    Array.from({ length: 50 }, async (_, i) =>
      restClient(stack.url, await stack.mintToken({ subject: `approver-${i}`, approval: binding })),
    ),
  );
  const answers = await Promise.all(
    clients.map((client) =>
      client.post<{ recorded?: boolean; code?: string }>(`/api/runs/${run.id}/approve`, {}),
    ),
  );
  const recorded = answers.filter((a) => a.status === 200 && a.body.recorded === true);
  assert.equal(recorded.length, 3, JSON.stringify(answers.map((a) => [a.status, a.body])));
  // The others came too late: the gate had passed (409 GATE_NOT_AWAITING), nothing else.
  for (const answer of answers.filter((a) => !(a.status === 200 && a.body.recorded === true)))
    assert.ok(
      answer.status === 409 && answer.body.code === "GATE_NOT_AWAITING",
      JSON.stringify(answer.body),
    );
  const finished = await waitForRun(await stack.client(), run.id);
  assert.equal(finished.state, "succeeded");
  assert.equal(finished.gates[0]?.decisions.length, 3);
  const events = await eventsWhen(stack.url, await stack.mintToken(), run.id, (log) =>
    log.some((event) => event.type === "run.succeeded"),
  );
  assert.equal(events.filter((e) => e.type === "gate.approved").length, 3);
  assert.equal(events.filter((e) => e.type === "step.succeeded" && e.stepId === "gate").length, 1);
  assert.equal(events.filter((e) => e.type === "log.stdout" && e.stepId === "after").length, 1);
});
