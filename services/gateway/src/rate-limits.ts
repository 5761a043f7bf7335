import { createHash } from "node:crypto";
import { PackrunError } from "@packrun/errors";
import type { FastifyReply } from "fastify";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Principal } from "./principal.ts";

/** Requests per minute an authenticated caller may make; 0 turns a limit off. */
export interface RateLimitSettings {
  /** Per bearer token (its `jti`, else a digest of the token). */
  readonly perTokenPerMinute: number;
  /** Per tenant, over all of its tokens. */
  readonly perTenantPerMinute: number;
}

/** Defaults: generous for people and CI jobs, a wall for a runaway client. */
export const defaultRateLimits: RateLimitSettings = {
  perTokenPerMinute: 1200,
  perTenantPerMinute: 6000,
};

/** Checks one authenticated request against its token's and its tenant's budgets. */
export type RateLimitCheck = (
  principal: Principal,
  authorization: string | undefined,
  reply: FastifyReply,
) => Promise<void>;

/**
 * Fixed-window limits per token and per tenant, counted in this gateway process (with several
 * gateway replicas each counts on its own, so a tenant's effective limit is replicas × the
 * setting). A refused request gets 429 `RATE_LIMITED` as a problem document with `Retry-After`
 * (whole seconds until the window frees a request), and consumes nothing from the other budget.
 */
export function createRateLimits(settings: RateLimitSettings): RateLimitCheck {
  const perToken =
    settings.perTokenPerMinute > 0
      ? new RateLimiterMemory({ points: settings.perTokenPerMinute, duration: 60 })
      : null;
  const perTenant =
    settings.perTenantPerMinute > 0
      ? new RateLimiterMemory({ points: settings.perTenantPerMinute, duration: 60 })
      : null;
  return async (principal, authorization, reply) => {
    const token =
      principal.tokenId ??
      createHash("sha256")
        .update(authorization ?? "")
        .digest("hex");
    for (const [limiter, key, what] of [
      [perToken, `${principal.tenant}\u0000${token}`, "this token"],
      [perTenant, principal.tenant, `tenant ${principal.tenant}`],
    ] as const) {
      if (limiter === null) continue;
      try {
        await limiter.consume(key);
      } catch (refusal) {
        if (!(refusal instanceof RateLimiterRes)) throw refusal;
        const seconds = Math.max(1, Math.ceil(refusal.msBeforeNext / 1000));
        reply.header("retry-after", String(seconds));
        throw new PackrunError(
          "RATE_LIMITED",
          `${what} made more than ${limiter.points} requests in a minute; retry in ${seconds} s`,
        );
      }
    }
  };
}
