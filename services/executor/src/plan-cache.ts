import { PackrunError } from "@packrun/errors";
import { canonicalJson, computePlanHash, type Plan } from "@packrun/planning";
import { LRUCache } from "lru-cache";
import type { PlanFetcher, PlannedPack } from "./run-service.ts";

/** A planner answer whose plan text was parsed and checked against its planHash. */
export interface VerifiedPlan {
  planned: PlannedPack;
  plan: Plan;
}

/** Options for {@link createPlanCache}. */
export interface PlanCacheOptions {
  /** Plans kept; default 500. */
  maxEntries?: number;
  /** How long a plan is reused; default one minute. */
  ttlMs?: number;
}

/**
 * Asks the planner for a plan unless the same request (tenant, pack source, inputs, secret
 * names) was planned within `ttlMs`. Planning is deterministic and published pack versions are
 * immutable, so a repeated submission of the same pack and inputs gets the same plan either
 * way; the cache saves the planner call and the parse and hash check of the plan text. Only
 * plans whose text hashes to their planHash are kept.
 *
 * The plan object is shared by every submission that reuses it: callers must not modify it.
 *
 * @throws PackrunError PLAN_HASH_MISMATCH when the planner's plan does not hash to its planHash
 * (nothing is cached then).
 */
export function createPlanCache(
  fetch: PlanFetcher,
  options: PlanCacheOptions = {},
): (request: Parameters<PlanFetcher>[0]) => Promise<VerifiedPlan> {
  const cache = new LRUCache<string, VerifiedPlan>({
    max: options.maxEntries ?? 500,
    ttl: options.ttlMs ?? 60_000,
  });
  return async (request) => {
    const key = canonicalJson({
      tenant: request.tenant,
      pack: request.pack,
      inputs: request.inputs,
      secretNames: [...request.secretNames].sort(),
    });
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    const planned = await fetch(request);
    const plan = JSON.parse(planned.planJson) as Plan;
    if (computePlanHash(plan) !== planned.planHash)
      throw new PackrunError(
        "PLAN_HASH_MISMATCH",
        `the planner's plan does not hash to its planHash ${planned.planHash}`,
      );
    const verified = { planned, plan };
    cache.set(key, verified);
    return verified;
  };
}
