import type { Scope } from "./scopes.ts";
import type { ApprovalBinding } from "./token-claims.ts";

/** Who a verified bearer token says is calling. */
export interface Principal {
  /** The token's `sub`: recorded as submitter, canceller or approver. */
  readonly subject: string;
  /** Every read and write of the request is scoped to this tenant. */
  readonly tenant: string;
  readonly scopes: ReadonlySet<Scope>;
  /** Groups or roles, matched against an approval gate's grants. */
  readonly groups: readonly string[];
  /** Present when the token is bound to one approval gate. */
  readonly approval: ApprovalBinding | undefined;
  /** The token's `jti`, for audit lines. */
  readonly tokenId: string | undefined;
}
