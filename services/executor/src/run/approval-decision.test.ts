import assert from "node:assert/strict";
import { describe, test } from "vitest";
import {
  type ApprovalDecision,
  type ApprovalFacts,
  type ApprovalGateFacts,
  credentialTokenId,
  decideApprovalGate,
  type OfflineCredential,
  type TokenCredential,
} from "./approval-decision.ts";

const runId = "0b9f1c2e-6a4d-4e0f-9a51-3c8d2f7b1a10";
const planHash = "sha256:plan";

const gate = (fields: Partial<ApprovalGateFacts> = {}): ApprovalGateFacts => ({
  stepId: "approve",
  approvalId: "release",
  state: "awaiting-approval",
  grants: [],
  required: 1,
  decisions: [],
  ...fields,
});

const token = (fields: Partial<TokenCredential> = {}): TokenCredential => ({
  kind: "token",
  subject: "alice",
  tenant: "acme",
  scopes: ["packs.approve"],
  groups: [],
  binding: { runId, gateId: "approve", planHash },
  tokenId: "jti:one",
  ...fields,
});

const facts = (fields: Partial<ApprovalFacts> = {}): ApprovalFacts => ({
  tenant: "acme",
  run: { id: runId, planHash },
  gates: [gate()],
  credential: token(),
  named: { gateStepId: "", approvalId: "" },
  approve: true,
  tokenSpent: false,
  ...fields,
});

/** The refusal's code, reason pattern and where it is recorded; fails on an accept. */
function assertRefused(
  decision: ApprovalDecision,
  code: string,
  reason: RegExp,
  at?: { approvalId: string; gateStepId: string | undefined },
) {
  assert.equal(decision.kind, "refuse", `expected ${code}, got an accept`);
  if (decision.kind !== "refuse") return;
  assert.equal(decision.code, code);
  assert.match(decision.reason, reason);
  if (at !== undefined) {
    assert.equal(decision.approvalId, at.approvalId);
    assert.equal(decision.gateStepId, at.gateStepId);
  }
}

function assertAccepted(decision: ApprovalDecision) {
  assert.equal(
    decision.kind,
    "accept",
    decision.kind === "refuse" ? `${decision.code}: ${decision.reason}` : "",
  );
  if (decision.kind !== "accept") throw new Error("unreachable");
  return decision;
}

describe("a bearer token's approval", () => {
  test("a token bound to the run, gate and plan opens a gate needing one approval", () => {
    const accepted = assertAccepted(decideApprovalGate(facts()));
    assert.equal(accepted.gate.stepId, "approve");
    assert.equal(accepted.approver, "alice");
    assert.equal(accepted.tokenId, "jti:one");
    assert.equal(accepted.newApprover, true);
    assert.equal(accepted.approvals, 1);
    assert.equal(accepted.gateOutcome, "opens");
  });

  test("a quorum of two: the first approval waits, the second opens", () => {
    const first = assertAccepted(decideApprovalGate(facts({ gates: [gate({ required: 2 })] })));
    assert.equal(first.gateOutcome, "waits");
    assert.equal(first.approvals, 1);
    const second = assertAccepted(
      decideApprovalGate(
        facts({
          gates: [gate({ required: 2, decisions: [{ approver: "bob", approved: true }] })],
        }),
      ),
    );
    assert.equal(second.gateOutcome, "opens");
    assert.equal(second.approvals, 2);
  });

  test("a rejection rejects the gate", () => {
    const rejected = assertAccepted(decideApprovalGate(facts({ approve: false })));
    assert.equal(rejected.gateOutcome, "rejected");
    assert.equal(rejected.newApprover, true);
  });

  test("the same approver's same decision again counts once (recorded: false)", () => {
    const again = assertAccepted(
      decideApprovalGate(
        facts({
          gates: [gate({ state: "succeeded", decisions: [{ approver: "alice", approved: true }] })],
        }),
      ),
    );
    assert.equal(again.newApprover, false);
    assert.equal(again.gateOutcome, "waits");
  });

  test("an approval id only one gate uses binds, and so does naming the gate the token binds", () => {
    const credential = token({ binding: { runId, gateId: "release", planHash } });
    assertAccepted(decideApprovalGate(facts({ credential })));
    assertAccepted(
      decideApprovalGate(facts({ credential, named: { gateStepId: "", approvalId: "release" } })),
    );
    assertAccepted(
      decideApprovalGate(facts({ credential, named: { gateStepId: "approve", approvalId: "" } })),
    );
  });

  test("another tenant's token is refused", () => {
    assertRefused(
      decideApprovalGate(facts({ credential: token({ tenant: "globex" }) })),
      "PERMISSION_DENIED",
      /tenant globex, not acme/,
      { approvalId: "approve", gateStepId: "approve" },
    );
  });

  test("a token without packs.approve is refused", () => {
    assertRefused(
      decideApprovalGate(facts({ credential: token({ scopes: ["packs.run", "packs.read"] }) })),
      "PERMISSION_DENIED",
      /needs the packs\.approve scope/,
    );
  });

  test("a token bound to nothing is refused, recorded at the gate the caller named", () => {
    assertRefused(
      decideApprovalGate(
        facts({
          credential: token({ binding: undefined }),
          named: { gateStepId: "", approvalId: "release" },
        }),
      ),
      "APPROVAL_TOKEN_MISMATCH",
      /needs a token bound to the run, gate and plan/,
      { approvalId: "release", gateStepId: "approve" },
    );
  });

  test("a token bound to another run is refused", () => {
    assertRefused(
      decideApprovalGate(
        facts({
          credential: token({ binding: { runId: "other-run", gateId: "approve", planHash } }),
        }),
      ),
      "APPROVAL_TOKEN_MISMATCH",
      /bound to run other-run, not/,
    );
  });

  test("a token for another plan is stale", () => {
    assertRefused(
      decideApprovalGate(
        facts({
          credential: token({ binding: { runId, gateId: "approve", planHash: "sha256:old" } }),
        }),
      ),
      "APPROVAL_STALE",
      /for plan sha256:old, but the run has plan sha256:plan/,
    );
  });

  test("a token for a gate the run does not have is refused", () => {
    assertRefused(
      decideApprovalGate(
        facts({ credential: token({ binding: { runId, gateId: "nope", planHash } }) }),
      ),
      "GATE_NOT_AWAITING",
      /has no approval gate "nope"/,
      { approvalId: "nope", gateStepId: undefined },
    );
  });

  test("an approval id two gates share opens neither", () => {
    const gates = [
      gate({ stepId: "staging", state: "succeeded" }),
      gate({ stepId: "prod", state: "awaiting-approval" }),
    ];
    assertRefused(
      decideApprovalGate(
        facts({ gates, credential: token({ binding: { runId, gateId: "release", planHash } }) }),
      ),
      "APPROVAL_TOKEN_MISMATCH",
      /2 gates of run .* \(staging, prod\)/,
      // Recorded at the gate awaiting a decision.
      { approvalId: "release", gateStepId: "prod" },
    );
  });

  test("naming another gate than the token's is refused", () => {
    const gates = [gate(), gate({ stepId: "other", approvalId: "other" })];
    for (const named of [
      { gateStepId: "other", approvalId: "" },
      { gateStepId: "", approvalId: "other" },
    ])
      assertRefused(
        decideApprovalGate(facts({ gates, named })),
        "APPROVAL_TOKEN_MISMATCH",
        /bound to gate "approve", not "other"/,
        { approvalId: "release", gateStepId: "approve" },
      );
  });

  test("an approver without one of the gate's grants is refused", () => {
    const gates = [gate({ grants: ["release-managers", "sre"] })];
    assertRefused(
      decideApprovalGate(facts({ gates, credential: token({ groups: ["dev"] }) })),
      "PERMISSION_DENIED",
      /needs one of the groups release-managers, sre; alice has dev/,
      { approvalId: "release", gateStepId: "approve" },
    );
    assertAccepted(decideApprovalGate(facts({ gates, credential: token({ groups: ["sre"] }) })));
  });

  test("a spent token is refused, even for the same approver's repeat", () => {
    assertRefused(
      decideApprovalGate(facts({ tokenSpent: true })),
      "APPROVAL_TOKEN_REUSED",
      /single-use/,
    );
    assertRefused(
      decideApprovalGate(
        facts({
          tokenSpent: true,
          gates: [gate({ decisions: [{ approver: "alice", approved: true }] })],
        }),
      ),
      "APPROVAL_TOKEN_REUSED",
      /single-use/,
    );
  });

  test("an approver changing their decision is refused", () => {
    assertRefused(
      decideApprovalGate(
        facts({
          approve: false,
          gates: [gate({ decisions: [{ approver: "alice", approved: true }] })],
        }),
      ),
      "GATE_NOT_AWAITING",
      /alice already approved gate "release"/,
    );
  });

  test("a gate that is not awaiting approval takes no new decision", () => {
    for (const state of ["pending", "succeeded", "rejected", "cancelled"])
      assertRefused(
        decideApprovalGate(facts({ gates: [gate({ state })] })),
        "GATE_NOT_AWAITING",
        new RegExp(`is ${state}, not awaiting a decision`),
      );
  });

  test("checks run in a fixed order: tenant, scope, binding, plan, gate, grants, single use", () => {
    const everythingWrong = facts({
      credential: token({ tenant: "globex", scopes: [], groups: [] }),
      gates: [gate({ grants: ["sre"] })],
      tokenSpent: true,
    });
    assertRefused(decideApprovalGate(everythingWrong), "PERMISSION_DENIED", /tenant globex/);
    assertRefused(
      decideApprovalGate({ ...everythingWrong, credential: token({ scopes: [] }) }),
      "PERMISSION_DENIED",
      /scope/,
    );
    assertRefused(
      decideApprovalGate({ ...everythingWrong, credential: token({ groups: [] }) }),
      "PERMISSION_DENIED",
      /groups sre/,
    );
    assertRefused(
      decideApprovalGate({ ...everythingWrong, credential: token({ groups: ["sre"] }) }),
      "APPROVAL_TOKEN_REUSED",
      /single-use/,
    );
  });
});

describe("an offline approver's signed response", () => {
  const expiresAt = new Date("2030-01-01T00:00:00Z");
  const request = {
    requestId: "7d1f0c9a-7b0e-4f7c-8c53-1b1e0f9c2d11",
    runId,
    stepId: "approve",
    approvalId: "release",
    planHash,
    nonce: "nonce",
    requestDigest: "sha256:request",
    expiresAt,
  };
  const offline = (
    response: Partial<OfflineCredential["response"]> = {},
    fields: Partial<OfflineCredential> = {},
  ): OfflineCredential => ({
    kind: "offline",
    approver: "olivia",
    groups: ["sre"],
    keyId: "key-1",
    request,
    response: {
      runId,
      gateStepId: "approve",
      approvalId: "release",
      planHash,
      nonce: "nonce",
      requestDigest: "sha256:request",
      ...response,
    },
    now: new Date("2029-12-31T00:00:00Z"),
    ...fields,
  });

  test("a response answering the exported request decides like an online approval", () => {
    const accepted = assertAccepted(decideApprovalGate(facts({ credential: offline() })));
    assert.equal(accepted.approver, "olivia");
    assert.equal(accepted.gateOutcome, "opens");
    assert.equal(accepted.tokenId, `offline:${request.requestId}:key-1`);
    assert.equal(credentialTokenId(offline()), accepted.tokenId);
  });

  test("a response whose nonce, digest, run or gate differ from the request is refused", () => {
    for (const [field, value] of [
      ["nonce", "other"],
      ["requestDigest", "sha256:other"],
      ["runId", "other-run"],
      ["gateStepId", "other"],
      ["approvalId", "other"],
    ] as const)
      assertRefused(
        decideApprovalGate(facts({ credential: offline({ [field]: value }) })),
        "APPROVAL_TOKEN_MISMATCH",
        new RegExp(`its ${field}`),
        { approvalId: "release", gateStepId: "approve" },
      );
  });

  test("a response for another plan than its request's is stale", () => {
    assertRefused(
      decideApprovalGate(facts({ credential: offline({ planHash: "sha256:old" }) })),
      "APPROVAL_STALE",
      /approves plan sha256:old/,
    );
  });

  test("a response to an expired request is refused", () => {
    assertRefused(
      decideApprovalGate(
        facts({ credential: offline({}, { now: new Date(expiresAt.getTime() + 1) }) }),
      ),
      "APPROVAL_EXPIRED",
      /expired at 2030-01-01T00:00:00.000Z/,
    );
  });

  test("a request for another run, or another plan than the run's, is refused", () => {
    assertRefused(
      decideApprovalGate(facts({ run: { id: "other-run", planHash }, credential: offline() })),
      "APPROVAL_TOKEN_MISMATCH",
      /is for run .*, not other-run/,
    );
    assertRefused(
      decideApprovalGate(
        facts({ run: { id: runId, planHash: "sha256:new" }, credential: offline() }),
      ),
      "APPROVAL_STALE",
      /run .* has plan sha256:new/,
    );
  });

  test("the signer's groups must hold one of the gate's grants", () => {
    assertRefused(
      decideApprovalGate(
        facts({ gates: [gate({ grants: ["cab"] })], credential: offline({}, { groups: [] }) }),
      ),
      "PERMISSION_DENIED",
      /olivia has none/,
    );
  });

  test("a response used once is refused the second time", () => {
    assertRefused(
      decideApprovalGate(facts({ credential: offline(), tokenSpent: true })),
      "APPROVAL_TOKEN_REUSED",
      /single-use/,
    );
  });
});
