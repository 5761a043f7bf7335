import { PackrunError } from "@packrun/errors";
import { canonicalJson, computePlanHash, type Plan } from "@packrun/planning";
import { LRUCache } from "lru-cache";
import type { LatestVersionResolver, PlanFetcher, PlannedPack } from "./run-submission.ts";

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
  /**
   * Names the latest published version of a pack, so that a reference without a version is
   * cached under the version it means now. Without it such references are never cached.
   */
  latestVersion?: LatestVersionResolver;
}

/**
 * Asks the planner for a plan unless the same request (tenant, pack source, inputs, secret
 * names) was planned within `ttlMs`. Planning is deterministic and published pack versions are
 * immutable, so a repeated submission of the same pack and inputs gets the same plan either
 * way; the cache saves the planner call and the parse and hash check of the plan text. Only
 * plans whose text hashes to their planHash are kept.
 *
 * A registry reference without a version means "latest", which changes when a version is
 * published: it is resolved to an exact version first (and planned as that version, so the
 * plan and the cache key agree even if another version is published meanwhile).
 *
 * Requests for the same key while its planner call is in flight wait for that call instead of
 * making their own (its failure is theirs too: the same request would have failed alike).
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
  const inFlight = new Map<string, Promise<VerifiedPlan>>();
  return async (submitted) => {
    const request = await pinVersion(submitted, options.latestVersion);
    if (request === undefined) return verify(await fetch(submitted));
    const key = canonicalJson({
      tenant: request.tenant,
      pack: request.pack,
      inputs: request.inputs,
      secretNames: [...request.secretNames].sort(),
    });
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    // Submissions of one pack arriving together (a burst) share one planner call.
    let planning = inFlight.get(key);
    if (planning === undefined) {
      planning = fetch(request)
        .then((planned) => {
          const verified = verify(planned);
          cache.set(key, verified);
          return verified;
        })
        .finally(() => inFlight.delete(key));
      inFlight.set(key, planning);
    }
    return planning;
  };
}

type PlanRequest = Parameters<PlanFetcher>[0];

/**
 * The request with a version-less registry reference pinned to the latest version; the request
 * itself when it has nothing to pin; undefined when it would need pinning but cannot be.
 */
async function pinVersion(
  request: PlanRequest,
  latestVersion: LatestVersionResolver | undefined,
): Promise<PlanRequest | undefined> {
  if (!("ref" in request.pack) || request.pack.ref.version !== "") return request;
  if (latestVersion === undefined) return undefined;
  const version = await latestVersion(request.tenant, request.pack.ref.name);
  return { ...request, pack: { ref: { name: request.pack.ref.name, version } } };
}

/** Parses the planner's plan text and checks it against its planHash. */
function verify(planned: PlannedPack): VerifiedPlan {
  const plan = JSON.parse(planned.planJson) as Plan;
  if (computePlanHash(plan) !== planned.planHash)
    throw new PackrunError(
      "PLAN_HASH_MISMATCH",
      `the planner's plan does not hash to its planHash ${planned.planHash}`,
    );
  return { planned, plan };
}
