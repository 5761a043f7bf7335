import { approvalTokenId, type Principal } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import type { ApprovalTokenClaims } from "@packrun/proto/executor/v1";
import type { TokenCredential } from "../run/approval-decision.ts";

/**
 * The credential of a DecideApproval called directly with a bearer token (the public gRPC API):
 * the token the access check verified, its id making it single-use. Whatever claims the
 * message carries are ignored: a caller vouches only with its own token.
 */
export function credentialOfPrincipal(
  principal: Principal,
  authorization: string,
): TokenCredential {
  return {
    kind: "token",
    subject: principal.subject,
    tenant: principal.tenant,
    scopes: [...principal.scopes],
    groups: principal.groups,
    binding: principal.approval,
    tokenId: approvalTokenId(principal.tokenId, authorization),
  };
}

/** Longest subject, group or claim value accepted from the gateway. */
const claimLimit = 512;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const controlCharacter = /[\u0000-\u001f\u007f]/;

/**
 * The credential the gateway passes on for REST: the claims of the approval token it verified
 * (signature, issuer, audience, expiry). The executor decides with them; it only refuses claims
 * that cannot be a verified token's.
 * @throws PackrunError REQUEST_INVALID without claims, a subject or a token id
 */
export function credentialOfClaims(claims: ApprovalTokenClaims | undefined): TokenCredential {
  if (claims === undefined)
    throw new PackrunError(
      "REQUEST_INVALID",
      "token is required: the claims of the verified approval token (subject, tenant, scopes, groups, binding, token id)",
    );
  const values = [
    claims.subject,
    claims.tenant,
    claims.runId,
    claims.gateId,
    claims.planHash,
    claims.tokenId,
    ...claims.scopes,
    ...claims.groups,
  ];
  if (values.some((value) => value.length > claimLimit || value.includes("\u0000")))
    throw new PackrunError(
      "REQUEST_INVALID",
      `token claims must be at most ${claimLimit} characters each, without NUL`,
    );
  if (controlCharacter.test(claims.subject) || controlCharacter.test(claims.tokenId))
    throw new PackrunError(
      "REQUEST_INVALID",
      "token.subject and token.token_id must be without control characters",
    );
  if (claims.subject === "" || claims.tokenId === "")
    throw new PackrunError(
      "REQUEST_INVALID",
      "token.subject and token.token_id are required (the approver, and what makes the token single-use)",
    );
  const bound = claims.runId !== "" && claims.gateId !== "" && claims.planHash !== "";
  return {
    kind: "token",
    subject: claims.subject,
    tenant: claims.tenant,
    scopes: claims.scopes,
    groups: claims.groups,
    binding: bound
      ? { runId: claims.runId, gateId: claims.gateId, planHash: claims.planHash }
      : undefined,
    tokenId: claims.tokenId,
  };
}
