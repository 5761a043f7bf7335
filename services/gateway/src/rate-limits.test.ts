/**
 * Issue 19: the gateway had no rate limits, so one token (or one tenant's many tokens) could
 * flood the services everyone shares. Now each token and each tenant has a budget of requests per
 * minute; over it, 429 RATE_LIMITED as a problem document with Retry-After.
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateLocalSigningKey, mintToken } from "@packrun/auth";
import { createLogger } from "@packrun/logging";
import { afterAll, beforeAll, test } from "vitest";
import { buildGatewayApp } from "./gateway-app.ts";
import type { GatewayApp } from "./gateway-context.ts";
import { createGatewayMetrics } from "./gateway-metrics.ts";
import { createServiceClients } from "./service-clients.ts";
import { createTokenVerifier } from "./token-verifier.ts";

let app: GatewayApp;
let token: (tenant: string, id: string) => Promise<string>;

beforeAll(async () => {
  const key = await generateLocalSigningKey();
  const dir = await mkdtemp(join(tmpdir(), "packrun-rate-limits-"));
  await writeFile(join(dir, "jwks.json"), JSON.stringify(key.jwks));
  const auth = {
    jwksFile: join(dir, "jwks.json"),
    issuer: "packrun-test",
    audience: "packrun",
    algorithms: ["ES256" as const],
    clockToleranceSeconds: 30,
    tenantClaim: "tenant",
    groupsClaim: "groups",
  };
  // No services behind it: a refused request never reaches them, an admitted one gets 503.
  const nowhere = "http://127.0.0.1:9";
  app = await buildGatewayApp({
    clients: createServiceClients({
      plannerUrl: nowhere,
      executorUrl: nowhere,
      evidenceUrl: nowhere,
    }),
    verifier: await createTokenVerifier(auth),
    metrics: createGatewayMetrics(),
    logger: createLogger({ service: "gateway-test", level: "silent" }),
    bodyLimitBytes: 64 * 1024,
    heartbeatMs: 15_000,
    rateLimits: { perTokenPerMinute: 3, perTenantPerMinute: 5 },
  });
  await app.ready();
  token = (tenant, id) =>
    mintToken({
      key: key.privateJwk,
      issuer: auth.issuer,
      audience: auth.audience,
      subject: `user-${id}`,
      tenant,
      scopes: ["packs.read"],
    });
});
afterAll(() => app.close());

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
