import { scopes } from "@packrun/auth";
import type { ErrorCode } from "@packrun/errors";

/**
 * The approval rules, in one place: every way of deciding an approval gate (REST through the
 * gateway, the public gRPC API with a bearer token, an offline approver's signed response) ends
 * in {@link decideApprovalGate}, which says accept or refuse with a stable error code. It is a
 * pure function of the facts the caller read under the run's lock; the caller applies an accept
 * and records a refusal as `gate.approval_refused`.
 */

/** A verified bearer token's claims (checked for signature, issuer and expiry before). */
export interface TokenCredential {
  readonly kind: "token";
  /** `sub`: the approver. */
  readonly subject: string;
  readonly tenant: string;
  readonly scopes: readonly string[];
  readonly groups: readonly string[];
  /** pack_run_id, pack_gate_id, pack_plan_hash; undefined when the token carries none. */
  readonly binding: { runId: string; gateId: string; planHash: string } | undefined;
  /** `jti:<jti>` or `sha256:<hex>` of the raw token: what makes it single-use. */
  readonly tokenId: string;
}

/** The offline approval request the executor exported and stored (approval_requests). */
export interface ExportedApprovalRequest {
  readonly requestId: string;
  readonly runId: string;
  readonly stepId: string;
  readonly approvalId: string;
  readonly planHash: string;
  readonly nonce: string;
  readonly requestDigest: string;
  readonly expiresAt: Date;
}

/** What an offline response claims to answer. */
export interface OfflineResponseClaims {
  readonly runId: string;
  readonly gateStepId: string;
  readonly approvalId: string;
  readonly planHash: string;
  readonly nonce: string;
  readonly requestDigest: string;
}

/**
 * An offline approver's response whose signature verified with one of the tenant's approver
 * keys, and the request it names.
 */
export interface OfflineCredential {
  readonly kind: "offline";
  /** The approver the verifying key belongs to. */
  readonly approver: string;
  readonly groups: readonly string[];
  readonly keyId: string;
  readonly request: ExportedApprovalRequest;
  readonly response: OfflineResponseClaims;
  /** The time the response is judged at (its request's expiry). */
  readonly now: Date;
}

/** What vouches for an approver. */
export type ApprovalCredential = TokenCredential | OfflineCredential;

/** One approval gate instance of the run, as stored. */
export interface ApprovalGateFacts {
  readonly stepId: string;
  /** spec.approvals[].id the gate uses. */
  readonly approvalId: string;
  /** The step's state (awaiting-approval while it takes decisions). */
  readonly state: string;
  /** Groups an approver must hold one of; empty: anyone with the scope. */
  readonly grants: readonly string[];
  /** Distinct approvals that open the gate. */
  readonly required: number;
  /** Decisions already recorded at this gate. */
  readonly decisions: readonly { approver: string; approved: boolean }[];
}

/** Everything an approval is decided from, read under the run's lock. */
export interface ApprovalFacts {
  /** The tenant the request was made in (the run was found in it). */
  readonly tenant: string;
  readonly run: { readonly id: string; readonly planHash: string };
  /** The run's approval gates, in plan order. */
  readonly gates: readonly ApprovalGateFacts[];
  readonly credential: ApprovalCredential;
  /** The gate the caller named, if any: a step id, and/or a step or approval id. */
  readonly named: { readonly gateStepId: string; readonly approvalId: string };
  readonly approve: boolean;
  /** Whether the credential's token id ({@link credentialTokenId}) was already spent. */
  readonly tokenSpent: boolean;
}

/** The approval stands. */
export interface ApprovalAccepted {
  readonly kind: "accept";
  readonly gate: ApprovalGateFacts;
  readonly approver: string;
  /** Spent with the decision (single use). */
  readonly tokenId: string;
  /**
   * False: this approver's identical decision was recorded already (answered `recorded:
   * false`, counted once); nothing changes but the token being spent.
   */
  readonly newApprover: boolean;
  /** Approvals at the gate with this one (0 for a rejection or a repeat). */
  readonly approvals: number;
  /** What the gate does next: opens (quorum reached), is rejected, or keeps waiting. */
  readonly gateOutcome: "opens" | "rejected" | "waits";
}

/** The approval is refused; recorded at `approvalId`/`gateStepId` of the run. */
export interface ApprovalRefused {
  readonly kind: "refuse";
  readonly code: ErrorCode;
  readonly reason: string;
  /** Who asked (the token's subject, the key's approver). */
  readonly approver: string;
  /** The approval the refusal is recorded under; empty when none could be told. */
  readonly approvalId: string;
  /** The gate instance the refusal is recorded for, when one could be told. */
  readonly gateStepId: string | undefined;
}

/** The answer of {@link decideApprovalGate}. */
export type ApprovalDecision = ApprovalAccepted | ApprovalRefused;

/** The id that makes the credential single-use. */
export function credentialTokenId(credential: ApprovalCredential): string {
  return credential.kind === "token"
    ? credential.tokenId
    : `offline:${credential.request.requestId}:${credential.keyId}`;
}

/** Who the credential says is approving. */
export function credentialApprover(credential: ApprovalCredential): string {
  return credential.kind === "token" ? credential.subject : credential.approver;
}

/** The gate a binding's gate id names: its step id, or an approval id only one gate uses. */
function gateNamed(
  gates: readonly ApprovalGateFacts[],
  gateId: string,
): { gate: ApprovalGateFacts } | { none: true } | { ambiguous: string[] } {
  const byStep = gates.find((gate) => gate.stepId === gateId);
  if (byStep !== undefined) return { gate: byStep };
  const byApproval = gates.filter((gate) => gate.approvalId === gateId);
  const [only] = byApproval;
  if (only === undefined) return { none: true };
  if (byApproval.length > 1) return { ambiguous: byApproval.map((gate) => gate.stepId) };
  return { gate: only };
}

/**
 * The gate a refusal naming `approvalId` is recorded for when no gate was resolved: the one
 * with that step id, else the first using that approval id, one awaiting approval first.
 */
function refusalGate(facts: ApprovalFacts, approvalId: string): string | undefined {
  if (approvalId === "") return undefined;
  const byStep = facts.gates.find((gate) => gate.stepId === approvalId);
  if (byStep !== undefined) return byStep.stepId;
  const using = facts.gates.filter((gate) => gate.approvalId === approvalId);
  return (using.find((gate) => gate.state === "awaiting-approval") ?? using[0])?.stepId;
}

/** Refusals before a gate is known: checks of the credential alone. */
function credentialRefusal(
  facts: ApprovalFacts,
): { code: ErrorCode; reason: string; approvalId: string } | undefined {
  const { credential, run } = facts;
  if (credential.kind === "offline") {
    const { request, response } = credential;
    const mismatch = [
      request.nonce !== response.nonce ? "nonce" : "",
      request.requestDigest !== response.requestDigest ? "requestDigest" : "",
      request.runId !== response.runId ? `runId ${response.runId}` : "",
      request.stepId !== response.gateStepId ? `gateStepId ${response.gateStepId}` : "",
      request.approvalId !== response.approvalId ? `approvalId ${response.approvalId}` : "",
    ].filter((part) => part !== "");
    const approvalId = request.approvalId;
    if (mismatch.length > 0)
      return {
        code: "APPROVAL_TOKEN_MISMATCH",
        reason: `the response does not answer request ${request.requestId} (gate "${request.stepId}" of run ${request.runId}): its ${mismatch.join(", ")} differ`,
        approvalId,
      };
    if (response.planHash !== request.planHash)
      return {
        code: "APPROVAL_STALE",
        reason: `the response approves plan ${response.planHash}, but request ${request.requestId} is for plan ${request.planHash}`,
        approvalId,
      };
    if (credential.now.getTime() > request.expiresAt.getTime())
      return {
        code: "APPROVAL_EXPIRED",
        reason: `request ${request.requestId} expired at ${request.expiresAt.toISOString()}; export a new one`,
        approvalId,
      };
    if (request.runId !== run.id)
      return {
        code: "APPROVAL_TOKEN_MISMATCH",
        reason: `request ${request.requestId} is for run ${request.runId}, not ${run.id}`,
        approvalId,
      };
    if (request.planHash !== run.planHash)
      return {
        code: "APPROVAL_STALE",
        reason: `the approval is for plan ${request.planHash}, but run ${run.id} has plan ${run.planHash}`,
        approvalId,
      };
    return undefined;
  }
  const { binding } = credential;
  const named = facts.named.gateStepId || facts.named.approvalId;
  if (credential.tenant !== facts.tenant)
    return {
      code: "PERMISSION_DENIED",
      reason: `the approval token is for tenant ${credential.tenant}, not ${facts.tenant}`,
      approvalId: binding?.gateId ?? named,
    };
  if (!credential.scopes.includes(scopes.approve))
    return {
      code: "PERMISSION_DENIED",
      reason: `an approval needs the ${scopes.approve} scope`,
      approvalId: binding?.gateId ?? named,
    };
  if (binding === undefined)
    return {
      code: "APPROVAL_TOKEN_MISMATCH",
      reason:
        "an approval needs a token bound to the run, gate and plan (claims pack_run_id, pack_gate_id, pack_plan_hash)",
      approvalId: named,
    };
  if (binding.runId !== run.id)
    return {
      code: "APPROVAL_TOKEN_MISMATCH",
      reason: `the approval token is bound to run ${binding.runId}, not ${run.id}`,
      approvalId: binding.gateId,
    };
  if (binding.planHash !== run.planHash)
    return {
      code: "APPROVAL_STALE",
      reason: `the approval token is for plan ${binding.planHash}, but the run has plan ${run.planHash}`,
      approvalId: binding.gateId,
    };
  return undefined;
}

/**
 * The gate the credential is bound to, or why it names none or several, or why the gate the
 * caller named is another one.
 */
function boundGate(
  facts: ApprovalFacts,
): { gate: ApprovalGateFacts } | { code: ErrorCode; reason: string; approvalId: string } {
  const { credential, run } = facts;
  const gateId =
    credential.kind === "offline" ? credential.request.stepId : (credential.binding?.gateId ?? "");
  const resolved = gateNamed(facts.gates, gateId);
  if ("none" in resolved)
    return {
      code: "GATE_NOT_AWAITING",
      reason: `run ${run.id} has no approval gate "${gateId}"`,
      approvalId: gateId,
    };
  if ("ambiguous" in resolved)
    return {
      code: "APPROVAL_TOKEN_MISMATCH",
      reason: `the approval token names approval "${gateId}", which ${resolved.ambiguous.length} gates of run ${run.id} use (${resolved.ambiguous.join(", ")}); its pack_gate_id must be the step id of the one gate it approves`,
      approvalId: gateId,
    };
  const { gate } = resolved;
  const { gateStepId, approvalId } = facts.named;
  if (
    (gateStepId !== "" && gateStepId !== gate.stepId) ||
    (approvalId !== "" && approvalId !== gate.stepId && approvalId !== gate.approvalId)
  )
    return {
      code: "APPROVAL_TOKEN_MISMATCH",
      reason: `the approval token is bound to gate "${gate.stepId}", not "${gateStepId || approvalId}"`,
      approvalId: gate.approvalId,
    };
  return { gate };
}

/**
 * Decides one approval: the credential's scope and tenant, its binding to this run, gate
 * instance and plan hash (an offline response: to the request the executor exported, unexpired),
 * the gate's grants, single use, one decision per approver, and the gate still awaiting
 * decisions. The checks run in that order, so the code a caller sees does not depend on the
 * entry point.
 */
export function decideApprovalGate(facts: ApprovalFacts): ApprovalDecision {
  const approver = credentialApprover(facts.credential);
  const refuse = (
    code: ErrorCode,
    reason: string,
    approvalId: string,
    gateStepId: string | undefined = refusalGate(facts, approvalId),
  ): ApprovalRefused => ({ kind: "refuse", code, reason, approver, approvalId, gateStepId });

  const early = credentialRefusal(facts);
  if (early !== undefined) return refuse(early.code, early.reason, early.approvalId);
  const bound = boundGate(facts);
  if (!("gate" in bound)) return refuse(bound.code, bound.reason, bound.approvalId);
  const { gate } = bound;
  const refuseAt = (code: ErrorCode, reason: string) =>
    refuse(code, reason, gate.approvalId, gate.stepId);

  const groups = facts.credential.groups;
  if (gate.grants.length > 0 && !gate.grants.some((grant) => groups.includes(grant)))
    return refuseAt(
      "PERMISSION_DENIED",
      `approving gate "${gate.stepId}" needs one of the groups ${gate.grants.join(", ")}; ${approver} has ${groups.length === 0 ? "none" : groups.join(", ")}`,
    );
  const tokenId = credentialTokenId(facts.credential);
  if (facts.tokenSpent)
    return refuseAt(
      "APPROVAL_TOKEN_REUSED",
      `this approval token was already used; approval tokens are single-use: get a new one bound to gate "${gate.stepId}"`,
    );
  const prior = gate.decisions.find((decision) => decision.approver === approver);
  if (prior !== undefined) {
    if (prior.approved !== facts.approve)
      return refuseAt(
        "GATE_NOT_AWAITING",
        `${approver} already ${prior.approved ? "approved" : "rejected"} gate "${gate.approvalId}"`,
      );
    return {
      kind: "accept",
      gate,
      approver,
      tokenId,
      newApprover: false,
      approvals: 0,
      gateOutcome: "waits",
    };
  }
  if (gate.state !== "awaiting-approval")
    return refuseAt(
      "GATE_NOT_AWAITING",
      `approval gate "${gate.approvalId}" is ${gate.state}, not awaiting a decision`,
    );
  if (!facts.approve)
    return {
      kind: "accept",
      gate,
      approver,
      tokenId,
      newApprover: true,
      approvals: 0,
      gateOutcome: "rejected",
    };
  const approvals = gate.decisions.filter((decision) => decision.approved).length + 1;
  return {
    kind: "accept",
    gate,
    approver,
    tokenId,
    newApprover: true,
    approvals,
    gateOutcome: approvals >= gate.required ? "opens" : "waits",
  };
}
