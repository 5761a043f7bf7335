import { readFile } from "node:fs/promises";
import { isTenantName, tenantNameRule } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import type { AuthConfig } from "./auth-config.ts";
import type { Principal } from "./principal.ts";
import { isScope, type Scope } from "./scopes.ts";
import { claimNames } from "./token-claims.ts";

/** Verifies bearer tokens and turns them into a {@link Principal}. */
export interface TokenVerifier {
  /**
   * @throws PackrunError UNAUTHENTICATED for a missing, malformed, unsigned, expired or
   *   foreign token (the message says which, never echoing the token)
   */
  verify(authorization: string | undefined): Promise<Principal>;
}

function unauthenticated(message: string, cause?: unknown): PackrunError {
  return new PackrunError("UNAUTHENTICATED", message, cause === undefined ? undefined : { cause });
}

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}

function scopesOf(payload: JWTPayload): Set<Scope> {
  const raw = payload[claimNames.scope] ?? payload.scp;
  const names =
    typeof raw === "string" ? raw.split(" ") : Array.isArray(raw) ? raw.map(String) : [];
  return new Set(names.filter(isScope));
}

function explain(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "the token has expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return `the token's ${error.claim} claim is not accepted (${error.reason})`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed)
    return "the token's signing algorithm is not accepted";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the token's signature does not verify";
  if (error instanceof joseErrors.JWKSNoMatchingKey) return "no trusted key matches the token";
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid)
    return "the token is malformed";
  return "the token is not valid";
}

/**
 * A verifier over the configured JWKS (file, read once at start, or URL, fetched and cached by
 * jose), issuer, audience and asymmetric algorithm allow-list. jose refuses `alg: none`
 * outright; the allow-list plus each key's own type stops HS/RS confusion.
 */
export async function createTokenVerifier(config: AuthConfig): Promise<TokenVerifier> {
  let keys: ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;
  if (config.jwksFile !== undefined) {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(await readFile(config.jwksFile, "utf8")) as JSONWebKeySet;
    } catch (cause) {
      throw new PackrunError(
        "CONFIG_INVALID",
        `PACKRUN_AUTH_JWKS_FILE: cannot read a JWK Set from ${config.jwksFile}`,
        { cause },
      );
    }
    keys = createLocalJWKSet(jwks);
  } else if (config.jwksUrl !== undefined) {
    keys = createRemoteJWKSet(new URL(config.jwksUrl));
  } else {
    throw new PackrunError("CONFIG_INVALID", "no JWKS configured");
  }

  return {
    async verify(authorization) {
      if (authorization === undefined || authorization === "")
        throw unauthenticated("a bearer token is required (Authorization: Bearer <token>)");
      const match = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/i.exec(authorization.trim());
      if (match?.[1] === undefined)
        throw unauthenticated("the Authorization header must be `Bearer <token>`");
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(match[1], keys, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: config.algorithms,
          clockTolerance: config.clockToleranceSeconds,
          requiredClaims: ["exp", "sub"],
        }));
      } catch (error) {
        throw unauthenticated(explain(error), error);
      }
      const tenant = stringClaim(payload, config.tenantClaim);
      if (tenant === undefined || !isTenantName(tenant))
        throw unauthenticated(
          `the token's ${config.tenantClaim} claim must name a tenant (${tenantNameRule})`,
        );
      const subject = stringClaim(payload, "sub");
      if (subject === undefined) throw unauthenticated("the token has no subject");
      const groupsClaim = payload[config.groupsClaim];
      const runId = stringClaim(payload, claimNames.runId);
      const gateId = stringClaim(payload, claimNames.gateId);
      const planHash = stringClaim(payload, claimNames.planHash);
      return {
        subject,
        tenant,
        scopes: scopesOf(payload),
        groups: Array.isArray(groupsClaim) ? groupsClaim.map(String) : [],
        approval:
          runId !== undefined && gateId !== undefined && planHash !== undefined
            ? { runId, gateId, planHash }
            : undefined,
        tokenId: stringClaim(payload, "jti"),
      };
    },
  };
}
