/**
 * Issue 15, "The executor owns every approval decision and refusal": the gateway authenticates
 * a bearer token and passes its claims on; the executor decides. Here the executor's
 * DecideApproval is called directly, with the gateway's own certificate and a stock grpc-js
 * client, with forged claims: a token for another run, another gate, another plan, another
 * tenant, without the approve scope or the gate's grant, unbound, or spent. The executor refuses
 * each by itself with the code REST users see, and records each as `gate.approval_refused`.
 * (Before, the gateway made most of these checks, and the executor trusted what it was sent.)
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, test } from "vitest";
import { type AnyClient, executorClient, unaryCall } from "./support/grpc-clients.ts";
import {
  eventsWhen,
  gatedManifest,
  type RunJson,
  runAwaitingGate,
  useSecurityStack,
  waitForRun,
} from "./support/stack.ts";

const ctx = useSecurityStack();
let gateway: AnyClient | undefined;
afterAll(() => gateway?.close());

/** The executor as the gateway reaches it (its client certificate). */
function asGateway(): AnyClient {
  gateway ??= executorClient(ctx.stack, "gateway");
  return gateway;
}

const gated = gatedManifest("approval-claims", { required: 2, grants: ["release-managers"] });
const awaitingRun = () => runAwaitingGate(ctx.alice, gated);

let tokens = 0;

/** Claims of a valid approval token for `run`'s gate, by `subject`; `fields` forge some. */
function claims(run: RunJson, subject: string, fields: Record<string, unknown> = {}) {
  tokens++;
  return {
    subject,
    tenant: "acme",
    scopes: ["packs.approve"],
    groups: ["release-managers"],
    runId: run.id,
    gateId: "gate",
    planHash: run.planHash,
    tokenId: `jti:approval-claims-${tokens}`,
    ...fields,
  };
}

function decide(run: RunJson, token: object | undefined, extra: object = {}) {
  return unaryCall(asGateway(), "decideApproval", {
    tenant: "acme",
    runId: run.id,
    approve: true,
    ...(token === undefined ? {} : { token }),
    ...extra,
  });
}

/** The call failed with `status` and the packrun error code `code`. */
function assertRefused(
  outcome: { error?: grpc.ServiceError },
  status: grpc.status,
  code: string,
  message: RegExp,
) {
  assert.ok(outcome.error, `expected ${code}, the call succeeded`);
  assert.equal(outcome.error.code, status, outcome.error.details);
  assert.deepEqual(outcome.error.metadata.get("packrun-error-code"), [code]);
  assert.match(outcome.error.details, message);
}

describe("DecideApproval called with the gateway's certificate and forged claims", () => {
  test("each forgery is refused by the executor and recorded in the run's evidence", async () => {
    const run = await awaitingRun();
    const other = await awaitingRun();
    const permissionDenied = 7 as grpc.status;
    const forgeries: [string, object, grpc.status, string, RegExp][] = [
      [
        "a token for another run",
        claims(run, "mallory", { runId: other.id }),
        permissionDenied,
        "APPROVAL_TOKEN_MISMATCH",
        new RegExp(`bound to run ${other.id}, not ${run.id}`),
      ],
      [
        "a token for another gate",
        claims(run, "mallory", { gateId: "after" }),
        9 as grpc.status, // FAILED_PRECONDITION
        "GATE_NOT_AWAITING",
        /has no approval gate "after"/,
      ],
      [
        "a token for another plan",
        claims(run, "mallory", {
          planHash: other.planHash === run.planHash ? "sha256:0" : other.planHash,
        }),
        permissionDenied,
        "APPROVAL_STALE",
        /but the run has plan/,
      ],
      [
        "a token of another tenant",
        claims(run, "mallory", { tenant: "globex" }),
        permissionDenied,
        "PERMISSION_DENIED",
        /tenant globex, not acme/,
      ],
      [
        "a token without packs.approve",
        claims(run, "mallory", { scopes: ["packs.run", "packs.read"] }),
        permissionDenied,
        "PERMISSION_DENIED",
        /needs the packs\.approve scope/,
      ],
      [
        "a token without the gate's grant",
        claims(run, "mallory", { groups: ["developers"] }),
        permissionDenied,
        "PERMISSION_DENIED",
        /needs one of the groups release-managers/,
      ],
      [
        "a token bound to nothing",
        claims(run, "mallory", { runId: "", gateId: "", planHash: "" }),
        permissionDenied,
        "APPROVAL_TOKEN_MISMATCH",
        /needs a token bound to the run, gate and plan/,
      ],
    ];
    for (const [what, token, status, code, message] of forgeries)
      try {
        assertRefused(await decide(run, token), status, code, message);
      } catch (error) {
        throw new Error(`${what}: ${String(error)}`);
      }
    // Naming another gate than the token's is refused too.
    assertRefused(
      await decide(run, claims(run, "mallory"), { gateStepId: "after" }),
      permissionDenied,
      "APPROVAL_TOKEN_MISMATCH",
      /bound to gate "gate", not "after"/,
    );
    // No claims at all (what the gateway sent before): not a decision the executor can make.
    assertRefused(
      await decide(run, undefined, { approvalId: "release" }),
      3 as grpc.status, // INVALID_ARGUMENT
      "REQUEST_INVALID",
      /token is required/,
    );

    const still = await waitForRun(ctx.alice, run.id, () => true);
    assert.equal(still.state, "awaiting-approval");
    assert.equal(still.gates.find((g) => g.stepId === "gate")?.decisions.length, 0);
    const refusals = (
      await eventsWhen(
        ctx.stack.url,
        await ctx.stack.mintToken(),
        run.id,
        (log) => log.filter((e) => e.type === "gate.approval_refused").length >= 8,
      )
    ).filter((e) => e.type === "gate.approval_refused");
    assert.deepEqual(
      refusals.map((e) => e.metadata?.code),
      [
        "APPROVAL_TOKEN_MISMATCH",
        "GATE_NOT_AWAITING",
        "APPROVAL_STALE",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "APPROVAL_TOKEN_MISMATCH",
        "APPROVAL_TOKEN_MISMATCH",
      ],
    );
    assert.ok(refusals.every((e) => e.metadata?.approver === "mallory"));
    // Recorded at the gate wherever the claims let one be told.
    assert.equal(refusals[5]?.stepId, "gate");
  });

  test("a token is spent by its first decision: a second use, by anyone, is refused", async () => {
    const run = await awaitingRun();
    const token = claims(run, "alice");
    const first = await decide(run, token);
    assert.equal(first.error, undefined, first.error?.details ?? "");
    assert.equal(first.response?.recorded, true);
    assertRefused(
      await decide(run, { ...token, subject: "bob" }),
      6 as grpc.status, // ALREADY_EXISTS
      "APPROVAL_TOKEN_REUSED",
      /single-use/,
    );
    assertRefused(
      await decide(run, token),
      6 as grpc.status,
      "APPROVAL_TOKEN_REUSED",
      /single-use/,
    );
    // The same approver with a new token counts once; a second approver opens the gate.
    const repeat = await decide(run, claims(run, "alice"));
    assert.equal(repeat.response?.recorded, false, repeat.error?.details ?? "");
    const second = await decide(run, claims(run, "bob"));
    assert.equal(second.response?.recorded, true, second.error?.details ?? "");
    const done = await waitForRun(ctx.alice, run.id);
    assert.equal(done.state, "succeeded");
    assert.deepEqual(
      done.gates.find((g) => g.stepId === "gate")?.decisions.map((d) => d.approver),
      ["alice", "bob"],
    );
    const events = await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
      log.some((e) => e.type === "run.succeeded"),
    );
    assert.deepEqual(
      events.filter((e) => e.type === "gate.approval_refused").map((e) => e.metadata?.code),
      ["APPROVAL_TOKEN_REUSED", "APPROVAL_TOKEN_REUSED"],
    );
  });

  test("a bearer caller's own token decides: claims it puts in the message are ignored", async () => {
    const run = await awaitingRun();
    // An organisation's internal caller (TLS without a client certificate, a bearer token of its
    // own) bound to the gate but without the grant sends a granted manager's claims alongside.
    const ungranted = await ctx.stack.mintToken({
      subject: "erin",
      scopes: ["packs.approve"],
      groups: ["developers"],
      approval: { runId: run.id, gateId: "gate", planHash: run.planHash },
    });
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${ungranted}`);
    const direct = executorClient(ctx.stack);
    try {
      assertRefused(
        await unaryCall(
          direct,
          "decideApproval",
          { tenant: "acme", runId: run.id, approve: true, token: claims(run, "ceo") },
          metadata,
        ),
        7 as grpc.status,
        "PERMISSION_DENIED",
        /needs one of the groups release-managers; erin has developers/,
      );
    } finally {
      direct.close();
    }
    const still = await waitForRun(ctx.alice, run.id, () => true);
    assert.equal(still.gates.find((g) => g.stepId === "gate")?.decisions.length, 0);
  });
});
