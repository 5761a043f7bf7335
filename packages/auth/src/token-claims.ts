/**
 * Claim names packrun reads from a bearer token. Standard claims (`iss`, `aud`, `sub`, `exp`,
 * `nbf`, `iat`, `jti`) keep their RFC 7519 meaning; these are the packrun-specific ones.
 */
export const claimNames = {
  /** Default claim holding the tenant; the gateway's tenant claim is configurable. */
  tenant: "tenant",
  /** Space-separated scopes (RFC 8693 `scope`); an array in `scp` is also accepted. */
  scope: "scope",
  /** Groups or roles of the subject, matched against an approval's `grants`. */
  groups: "groups",
  /** Approval binding: the run the approval is for. */
  runId: "pack_run_id",
  /** Approval binding: the approval id (spec.approvals[].id) of the gate. */
  gateId: "pack_gate_id",
  /** Approval binding: the run's plan hash when the approver looked at it. */
  planHash: "pack_plan_hash",
} as const;

/** The three claims that bind an approval token to one gate of one run of one plan. */
export interface ApprovalBinding {
  readonly runId: string;
  readonly gateId: string;
  readonly planHash: string;
}
