/**
 * Issue 19, break 3: one approval token passed every gate that shared its approval id. A
 * staging and a prod gate using the same `approvals[].id` (or the gates of a `map`) were all
 * opened by a token bound only to that id, and a token could be used again and again.
 *
 * Now a token binds to one gate instance: `pack_gate_id` names the gate's step id (an approval
 * id is still accepted when exactly one gate of the run uses it), and an approval token is
 * single-use (its `jti`, or its digest when it has none, is recorded with the decision): a
 * second use is refused with APPROVAL_TOKEN_REUSED and the refusal is in the run's evidence.
 */
import assert from "node:assert/strict";
import { test } from "vitest";
import { type RestClient, restClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  eventsWhen,
  manifest,
  type RunJson,
  submitRun,
  useSecurityStack,
  waitForRun,
} from "./support/stack.ts";

const twoGates = manifest(
  "shared-approval",
  `  approvals: [{id: release}]
  steps:
    - id: staging
      gate: {approval: {id: release}}
    - id: deploy-staging
      run: {uses: builtin:noop}
    - id: prod
      gate: {approval: {id: release}}
    - id: deploy-prod
      run: {uses: builtin:noop}
`,
);

const oneGate = manifest(
  "single-approval",
  `  approvals: [{id: release}]
  steps:
    - id: gate
      gate: {approval: {id: release}}
    - id: after
      run: {uses: builtin:noop}
`,
);

const ctx = useSecurityStack();

async function awaiting(pack: string, gate: string): Promise<RunJson> {
  const run = await submitRun(ctx.alice, { manifest: pack });
  return waitForRun(ctx.alice, run.id, (r) => r.pendingGates.length > 0 && isAwaiting(r, gate));
}

function isAwaiting(run: RunJson, stepId: string): boolean {
  return run.gates.some((g) => g.stepId === stepId && g.state === "awaiting-approval");
}

async function approver(run: RunJson, gateId: string): Promise<RestClient> {
  return restClient(
    ctx.stack.url,
    await ctx.stack.mintToken({
      subject: "carol",
      approval: { runId: run.id, gateId, planHash: run.planHash },
    }),
  );
}

test("a token bound to an approval id two gates share opens neither; one bound to a gate's step id opens only that gate", async () => {
  const run = await awaiting(twoGates, "staging");
  const byApprovalId = await approver(run, "release");
  const ambiguous = await byApprovalId.post<{ code: string; detail: string }>(
    `/api/runs/${run.id}/approve`,
    {},
  );
  assert.equal(ambiguous.status, 403, JSON.stringify(ambiguous.body));
  assert.equal(ambiguous.body.code, "APPROVAL_TOKEN_MISMATCH");
  assert.match(ambiguous.body.detail, /staging/);
  assert.match(ambiguous.body.detail, /prod/);

  const staging = await approver(run, "staging");
  const first = await staging.post<{ recorded: boolean }>(`/api/runs/${run.id}/approve`, {});
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.recorded, true);

  const atProd = await waitForRun(ctx.alice, run.id, (r) => isAwaiting(r, "prod"));
  // The staging token again, now that prod waits: refused, prod stays closed.
  const again = await staging.post<{ code: string }>(`/api/runs/${run.id}/approve`, {});
  assert.notEqual(again.status, 200, JSON.stringify(again.body));
  const still = await waitForRun(ctx.alice, atProd.id, () => true);
  assert.ok(isAwaiting(still, "prod"), JSON.stringify(still.gates));
  assert.equal(still.gates.find((g) => g.stepId === "prod")?.decisions.length, 0);

  const events = await eventsWhen(
    ctx.stack.url,
    await ctx.stack.mintToken(),
    run.id,
    (log) => log.filter((e) => e.type === "gate.approval_refused").length >= 2,
  );
  assert.equal(events.filter((e) => e.type === "gate.approved").length, 1);

  const prod = await approver(run, "prod");
  const last = await prod.post<{ recorded: boolean }>(`/api/runs/${run.id}/approve`, {});
  assert.equal(last.status, 200, JSON.stringify(last.body));
  assert.equal((await waitForRun(ctx.alice, run.id)).state, "succeeded");
});

test("an approval token is single-use: a second use is refused and recorded", async () => {
  const run = await awaiting(oneGate, "gate");
  // An approval id that only one gate uses still binds (older clients keep working).
  const client = await approver(run, "release");
  const first = await client.post<{ recorded: boolean }>(`/api/runs/${run.id}/approve`, {});
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.recorded, true);
  const second = await client.post<{ code: string; detail: string }>(
    `/api/runs/${run.id}/approve`,
    {},
  );
  assert.equal(second.status, 409, JSON.stringify(second.body));
  assert.equal(second.body.code, "APPROVAL_TOKEN_REUSED");
  const events = await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
    log.some(
      (e) =>
        e.type === "gate.approval_refused" &&
        JSON.stringify(e.metadata ?? {}).includes("APPROVAL_TOKEN_REUSED"),
    ),
  );
  assert.equal(events.filter((e) => e.type === "gate.approved").length, 1);
});

test("map-expanded gates: an approval-id token opens none, a step-id token exactly one", async () => {
  const pack = manifest(
    "mapped-approval",
    `  approvals: [{id: release}]
  steps:
    - id: regions
      map:
        items: [eu, us]
        step: {id: gate, gate: {approval: {id: release}}}
`,
  );
  const submitted = await submitRun(ctx.alice, { manifest: pack });
  const run = await waitForRun(ctx.alice, submitted.id, (r) => r.pendingGates.length > 0);
  const gateIds = run.gates.map((g) => g.stepId);
  assert.equal(gateIds.length, 2, JSON.stringify(run.gates));
  const ambiguous = await (await approver(run, "release")).post<{ code: string }>(
    `/api/runs/${run.id}/approve`,
    {},
  );
  assert.equal(ambiguous.status, 403, JSON.stringify(ambiguous.body));
  const one = gateIds[0] as string;
  const answer = await (await approver(run, one)).post<{ recorded: boolean }>(
    `/api/runs/${run.id}/approve`,
    {},
  );
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const after = await waitForRun(ctx.alice, run.id, () => true);
  const decided = after.gates.filter((g) => g.decisions.length > 0).map((g) => g.stepId);
  assert.deepEqual(decided, [one]);
});
