import { createHash } from "node:crypto";
import type { Gate, Run } from "@packrun/proto/executor/v1";
import { StepKind } from "@packrun/proto/pack/v1";

/** The gate an approval token's `pack_gate_id` names, or why it names none or several. */
export type BoundGate =
  | { kind: "gate"; gate: Gate }
  | { kind: "none" }
  | { kind: "ambiguous"; stepIds: string[] };

/**
 * Resolves `pack_gate_id` to one gate instance of `run`. The gate's step id binds exactly;
 * an approval id (`spec.approvals[].id`, what older clients put there) binds only when exactly
 * one approval gate of the run uses it: a staging and a prod gate sharing an approval id, or
 * the gates of a `map`, would otherwise all open with one token.
 */
export function gateOfBinding(run: Run, gateId: string): BoundGate {
  const approvals = run.gates.filter((gate) => gate.kind === StepKind.APPROVAL_GATE);
  const byStep = approvals.find((gate) => gate.stepId === gateId);
  if (byStep !== undefined) return { kind: "gate", gate: byStep };
  const byApproval = approvals.filter((gate) => gate.gateRef === gateId);
  const [only] = byApproval;
  if (only === undefined) return { kind: "none" };
  if (byApproval.length > 1)
    return { kind: "ambiguous", stepIds: byApproval.map((gate) => gate.stepId) };
  return { kind: "gate", gate: only };
}

/**
 * What makes an approval token single-use: its `jti`, or, for an identity provider that sets
 * none, the SHA-256 of the token itself (a replay sends the very same text).
 */
export function approvalTokenId(
  jti: string | undefined,
  authorization: string | undefined,
): string {
  if (jti !== undefined && jti !== "") return `jti:${jti}`;
  const token = (authorization ?? "").replace(/^Bearer\s+/i, "");
  return `sha256:${createHash("sha256").update(token).digest("hex")}`;
}
