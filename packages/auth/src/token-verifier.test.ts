/**
 * What the gateway's token-verifier tests (services/gateway/src/token-verifier.test.ts) do not
 * reach: a JWK Set fetched from a URL, a token no trusted key matches, a verifier without keys,
 * the configuration schema's rules, and the digest that identifies an approval token without a
 * `jti`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { isPackrunError } from "@packrun/errors";
import { afterAll, beforeAll, test } from "vitest";
import { approvalTokenId } from "./approval-binding.ts";
import { type AuthConfig, authConfigSchema } from "./auth-config.ts";
import { generateLocalSigningKey, type LocalSigningKey } from "./local-signing-key.ts";
import { mintToken } from "./mint-token.ts";
import { createTokenVerifier } from "./token-verifier.ts";

let trusted: LocalSigningKey;
let server: Server;
let jwksUrl = "";

beforeAll(async () => {
  trusted = await generateLocalSigningKey();
  server = createServer((_request, response) => {
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify(trusted.jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const settings = {
  issuer: "https://id.example",
  audience: "packrun",
  algorithms: ["ES256"],
  clockToleranceSeconds: 30,
  tenantClaim: "tenant",
  groupsClaim: "groups",
} satisfies Omit<AuthConfig, "jwksFile" | "jwksUrl">;

const token = (key: LocalSigningKey) =>
  mintToken({
    key: key.privateJwk,
    issuer: settings.issuer,
    audience: settings.audience,
    subject: "svc-deployer",
    tenant: "acme",
    scopes: ["packs.read"],
  });

test("a JWK Set fetched from a URL verifies its keys' tokens and no other key's", async () => {
  const verifier = await createTokenVerifier({ ...settings, jwksUrl });
  const principal = await verifier.verify(`Bearer ${await token(trusted)}`);
  assert.equal(principal.subject, "svc-deployer");
  assert.equal(principal.tenant, "acme");
  const stranger = await generateLocalSigningKey();
  await assert.rejects(verifier.verify(`Bearer ${await token(stranger)}`), (error: unknown) => {
    assert.ok(isPackrunError(error));
    assert.equal(error.code, "UNAUTHENTICATED");
    assert.equal(error.message, "no trusted key matches the token");
    return true;
  });
});

test("when the JWK Set cannot be fetched, tokens are refused (never waved through)", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const verifier = await createTokenVerifier({
    ...settings,
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
  });
  await assert.rejects(verifier.verify(`Bearer ${await token(trusted)}`), (error: unknown) => {
    assert.ok(isPackrunError(error));
    assert.equal(error.code, "UNAUTHENTICATED");
    assert.equal(error.message, "the token is not valid");
    return true;
  });
});

test("a verifier without keys is a configuration error", async () => {
  await assert.rejects(createTokenVerifier(settings), /no JWKS configured/);
});

test("the settings need exactly one JWK Set source", () => {
  const parse = (extra: object) => authConfigSchema.safeParse({ ...settings, ...extra });
  assert.equal(parse({ jwksUrl }).success, true);
  for (const extra of [{}, { jwksUrl, jwksFile: "/keys/jwks.json" }]) {
    const result = parse(extra);
    assert.equal(result.success, false);
    assert.match(
      JSON.stringify(result.error?.issues),
      /set exactly one of PACKRUN_AUTH_JWKS_FILE and PACKRUN_AUTH_JWKS_URL/,
    );
  }
  const algorithms = authConfigSchema.safeParse({
    ...settings,
    jwksUrl,
    algorithms: "ES256, HS256",
  });
  assert.equal(algorithms.success, false, "HMAC is never an accepted algorithm");
});

test("an approval token without a jti is identified by its digest, never by its text", () => {
  assert.equal(approvalTokenId("abc", "Bearer x.y.z"), "jti:abc");
  const digest = createHash("sha256").update("x.y.z").digest("hex");
  assert.equal(approvalTokenId(undefined, "Bearer x.y.z"), `sha256:${digest}`);
  assert.equal(approvalTokenId("", "bearer x.y.z"), `sha256:${digest}`);
});
