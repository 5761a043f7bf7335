import { importJWK, type JWK, SignJWT } from "jose";
import type { Scope } from "./scopes.ts";
import { type ApprovalBinding, claimNames } from "./token-claims.ts";

/** What a locally minted token says. */
export interface TokenRequest {
  /** Private JWK with `kid` and `alg`. */
  readonly key: JWK;
  readonly issuer: string;
  readonly audience: string;
  /** Who acts: recorded as submitter, approver or canceller. */
  readonly subject: string;
  readonly tenant: string;
  readonly scopes: readonly Scope[];
  readonly groups?: readonly string[];
  /** Binds the token to one approval gate; required by the approve endpoint. */
  readonly approval?: ApprovalBinding;
  /** Lifetime in seconds (default one hour). */
  readonly expiresInSeconds?: number;
  /** Claim the tenant goes into (default `tenant`). */
  readonly tenantClaim?: string;
}

/**
 * Signs a JWT for dev mode and tests. Production tokens come from the operator's identity
 * provider; the gateway verifies both the same way.
 */
export async function mintToken(request: TokenRequest): Promise<string> {
  const alg = request.key.alg;
  if (alg === undefined) throw new Error("the signing key has no alg");
  const claims: Record<string, unknown> = {
    [request.tenantClaim ?? claimNames.tenant]: request.tenant,
    [claimNames.scope]: request.scopes.join(" "),
  };
  if (request.groups !== undefined && request.groups.length > 0)
    claims[claimNames.groups] = [...request.groups];
  if (request.approval !== undefined) {
    claims[claimNames.runId] = request.approval.runId;
    claims[claimNames.gateId] = request.approval.gateId;
    claims[claimNames.planHash] = request.approval.planHash;
  }
  const header = request.key.kid === undefined ? { alg } : { alg, kid: request.key.kid };
  return new SignJWT(claims)
    .setProtectedHeader(header)
    .setIssuer(request.issuer)
    .setAudience(request.audience)
    .setSubject(request.subject)
    .setIssuedAt()
    .setJti(crypto.randomUUID())
    .setExpirationTime(`${request.expiresInSeconds ?? 3600}s`)
    .sign(await importJWK(request.key, alg));
}
