/**
 * Issue 19: the gateway had no rate limits, so one token (or one tenant's many tokens) could
 * flood the services everyone shares. Now each token and each tenant has a budget of requests per
 * minute; over it, 429 RATE_LIMITED as a problem document with Retry-After.
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, test } from "vitest";
import type { GatewayApp } from "./gateway-context.ts";
import { buildStandaloneGateway, type StandaloneGateway } from "./testing/standalone-app.ts";

let gateway: StandaloneGateway;
let app: GatewayApp;
const token = (tenant: string, id: string) =>
  gateway.token({ tenant, subject: `user-${id}`, scopes: ["packs.read"] });

beforeAll(async () => {
  // No services behind it: a refused request never reaches them, an admitted one gets 503.
  gateway = await buildStandaloneGateway({
    rateLimits: { perTokenPerMinute: 3, perTenantPerMinute: 5 },
  });
  app = gateway.app;
  await app.ready();
});
afterAll(() => gateway.close());

async function listRuns(bearer: string) {
  const response = await app.inject({
    method: "GET",
    url: "/api/runs",
    headers: { authorization: `Bearer ${bearer}` },
  });
  return response;
}

test("one token over its budget gets 429 RATE_LIMITED with Retry-After; others are served", async () => {
  const flood = await token("acme", "flood");
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await listRuns(flood)).statusCode);
  assert.ok(!statuses.includes(429), `within the budget: ${statuses}`);
  const refused = await listRuns(flood);
  assert.equal(refused.statusCode, 429);
  assert.match(refused.headers["content-type"] ?? "", /^application\/problem\+json/);
  assert.equal(refused.json().code, "RATE_LIMITED");
  assert.match(refused.json().detail, /this token made more than 3 requests in a minute/);
  const retryAfter = Number(refused.headers["retry-after"]);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);

  // Another tenant is untouched by acme's flood.
  assert.notEqual((await listRuns(await token("globex", "g1"))).statusCode, 429);
});

test("a tenant's many tokens share the tenant's budget", async () => {
  // acme spent 3 of its 5 above (the refused 4th request stopped at the token's budget).
  const second = await token("acme", "second");
  const statuses = [(await listRuns(second)).statusCode, (await listRuns(second)).statusCode];
  assert.ok(!statuses.includes(429), `within the tenant's budget: ${statuses}`);
  const refused = await listRuns(await token("acme", "third"));
  assert.equal(refused.statusCode, 429);
  assert.match(refused.json().detail, /tenant acme made more than 5 requests in a minute/);
  assert.ok(Number(refused.headers["retry-after"]) >= 1);
});

test("unauthenticated probes and documents are not counted", async () => {
  for (let i = 0; i < 10; i++) {
    const response = await app.inject({ method: "GET", url: "/.well-known/openapi" });
    assert.equal(response.statusCode, 200);
  }
});
