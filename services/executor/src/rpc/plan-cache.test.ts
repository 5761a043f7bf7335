import assert from "node:assert/strict";
import { isPackrunError } from "@packrun/errors";
import { computePlanHash, type Plan } from "@packrun/planning";
import { test } from "vitest";
import { createPlanCache } from "./plan-cache.ts";
import type { PlanFetcher } from "./run-service.ts";

/** A planner stand-in that counts its calls and plans `{inputs}` into a (minimal) plan text. */
function countingPlanner(options: { corrupt?: boolean } = {}) {
  const calls: Parameters<PlanFetcher>[0][] = [];
  const fetch: PlanFetcher = async (request) => {
    calls.push(request);
    const plan = {
      inputs: request.inputs,
      steps: [],
      secrets: request.secretNames,
    } as never as Plan;
    return {
      planHash: options.corrupt === true ? "sha256:0" : computePlanHash(plan),
      planJson: JSON.stringify(plan),
      manifest: "",
      packName: "p",
      packVersion: "1.0.0",
      packDigest: "sha256:d",
    };
  };
  return { fetch, calls };
}

const request = {
  tenant: "acme",
  pack: { manifest: "name: p" },
  inputs: { a: 1, b: "x" },
  secretNames: ["TOKEN", "KEY"],
};

test("the same request is planned once; inputs in another key order are the same request", async () => {
  const planner = countingPlanner();
  const plan = createPlanCache(planner.fetch);
  const first = await plan(request);
  const again = await plan({ ...request, inputs: { b: "x", a: 1 }, secretNames: ["KEY", "TOKEN"] });
  assert.equal(planner.calls.length, 1);
  assert.equal(again, first);
  assert.deepEqual(first.plan.inputs, { a: 1, b: "x" });
});

test("another tenant, pack, input or secret set is planned anew", async () => {
  const planner = countingPlanner();
  const plan = createPlanCache(planner.fetch);
  await plan(request);
  await plan({ ...request, tenant: "other" });
  await plan({ ...request, pack: { manifest: "name: q" } });
  await plan({ ...request, pack: { ref: { name: "p", version: "1.0.0" } } });
  await plan({ ...request, inputs: { a: 2, b: "x" } });
  await plan({ ...request, secretNames: ["TOKEN"] });
  assert.equal(planner.calls.length, 6);
});

test("plans expire after the TTL and the oldest go when the cache is full", async () => {
  const planner = countingPlanner();
  const short = createPlanCache(planner.fetch, { ttlMs: 20 });
  await short(request);
  await new Promise((resolve) => setTimeout(resolve, 40));
  await short(request);
  assert.equal(planner.calls.length, 2);

  const small = countingPlanner();
  const tiny = createPlanCache(small.fetch, { maxEntries: 1 });
  await tiny(request);
  await tiny({ ...request, inputs: { a: 9 } });
  await tiny(request);
  assert.equal(small.calls.length, 3);
});

test("a plan that does not hash to its planHash is refused and never cached", async () => {
  const planner = countingPlanner({ corrupt: true });
  const plan = createPlanCache(planner.fetch);
  for (let i = 0; i < 2; i++) {
    await assert.rejects(plan(request), (error) => {
      assert.ok(isPackrunError(error));
      assert.equal(error.code, "PLAN_HASH_MISMATCH");
      return true;
    });
  }
  assert.equal(planner.calls.length, 2);
});

test("a reference without a version is pinned to the latest version before the cache is asked", async () => {
  const planner = countingPlanner();
  let latest = "1.0.0";
  const plan = createPlanCache(planner.fetch, { latestVersion: async () => latest });
  const latestRef = { ...request, pack: { ref: { name: "p", version: "" } } };
  await plan(latestRef);
  await plan(latestRef);
  assert.equal(planner.calls.length, 1);
  assert.deepEqual(planner.calls[0]?.pack, { ref: { name: "p", version: "1.0.0" } });
  latest = "2.0.0";
  await plan(latestRef);
  assert.equal(planner.calls.length, 2);
  assert.deepEqual(planner.calls[1]?.pack, { ref: { name: "p", version: "2.0.0" } });
  // The pinned request and the exact one are the same request.
  await plan({ ...request, pack: { ref: { name: "p", version: "2.0.0" } } });
  assert.equal(planner.calls.length, 2);
});

test("without a resolver a reference without a version is never cached", async () => {
  const planner = countingPlanner();
  const plan = createPlanCache(planner.fetch);
  const latestRef = { ...request, pack: { ref: { name: "p", version: "" } } };
  await plan(latestRef);
  await plan(latestRef);
  assert.equal(planner.calls.length, 2);
});

test("requests arriving together share one planner call; a failed call is shared, then retried", async () => {
  const planner = countingPlanner();
  const plan = createPlanCache(planner.fetch);
  const burst = await Promise.all(Array.from({ length: 32 }, () => plan(request)));
  assert.equal(planner.calls.length, 1);
  for (const verified of burst) assert.equal(verified, burst[0]);
  // Another request in the same burst is not held behind the first one's call.
  await Promise.all([plan({ ...request, inputs: { a: 3 } }), plan({ ...request, tenant: "b" })]);
  assert.equal(planner.calls.length, 3);

  let failures = 1;
  const flaky = countingPlanner();
  const failing = createPlanCache(async (submitted) => {
    if (failures-- > 0) {
      flaky.calls.push(submitted);
      throw new Error("planner unavailable");
    }
    return flaky.fetch(submitted);
  });
  const outcomes = await Promise.allSettled([failing(request), failing(request)]);
  assert.deepEqual(
    outcomes.map((outcome) => outcome.status),
    ["rejected", "rejected"],
  );
  assert.equal(flaky.calls.length, 1);
  // Nothing was cached and nothing stays in flight: the next request plans again.
  await failing(request);
  assert.equal(flaky.calls.length, 2);

  const corrupt = countingPlanner({ corrupt: true });
  const refusing = createPlanCache(corrupt.fetch);
  const refused = await Promise.allSettled([refusing(request), refusing(request)]);
  for (const outcome of refused) {
    assert.equal(outcome.status, "rejected");
    assert.ok(isPackrunError(outcome.reason));
    assert.equal(outcome.reason.code, "PLAN_HASH_MISMATCH");
  }
  assert.equal(corrupt.calls.length, 1);
  await assert.rejects(refusing(request));
  assert.equal(corrupt.calls.length, 2);
});
