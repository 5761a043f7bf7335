import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateLocalSigningKey, type LocalSigningKey, mintToken } from "@packrun/auth";
import { isPackrunError } from "@packrun/errors";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, test } from "vitest";
import type { AuthConfig } from "./gateway-config.ts";
import { createTokenVerifier, type TokenVerifier } from "./token-verifier.ts";

let trusted: LocalSigningKey;
let verifier: TokenVerifier;
const config = (jwksFile: string): AuthConfig => ({
  jwksFile,
  issuer: "https://id.example",
  audience: "packrun",
  algorithms: ["ES256", "RS256"],
  clockToleranceSeconds: 30,
  tenantClaim: "tenant",
  groupsClaim: "groups",
});

const base = {
  issuer: "https://id.example",
  audience: "packrun",
  subject: "alice",
  tenant: "acme",
  scopes: ["packs.read"] as const,
};

async function refusal(token: string): Promise<string> {
  try {
    await verifier.verify(`Bearer ${token}`);
  } catch (error) {
    assert.ok(isPackrunError(error));
    assert.equal(error.code, "UNAUTHENTICATED");
    return error.message;
  }
  assert.fail("the token was accepted");
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

beforeAll(async () => {
  trusted = await generateLocalSigningKey();
  const dir = await mkdtemp(join(tmpdir(), "packrun-jwks-"));
  const file = join(dir, "jwks.json");
  await writeFile(file, JSON.stringify(trusted.jwks));
  verifier = await createTokenVerifier(config(file));
});

describe("token verification", () => {
  test("a well-formed token becomes a principal with tenant, scopes, groups and approval binding", async () => {
    const token = await mintToken({
      ...base,
      key: trusted.privateJwk,
      scopes: ["packs.read", "packs.approve"],
      groups: ["release-managers"],
      approval: { runId: "r1", gateId: "release", planHash: "sha256:ab" },
    });
    const principal = await verifier.verify(`Bearer ${token}`);
    assert.equal(principal.subject, "alice");
    assert.equal(principal.tenant, "acme");
    assert.deepEqual([...principal.scopes].sort(), ["packs.approve", "packs.read"]);
    assert.deepEqual(principal.groups, ["release-managers"]);
    assert.deepEqual(principal.approval, { runId: "r1", gateId: "release", planHash: "sha256:ab" });
  });

  test("unknown scopes are ignored, not trusted", async () => {
    const key = await (await import("jose")).importJWK(trusted.privateJwk, "ES256");
    const token = await new SignJWT({ tenant: "acme", scope: "packs.read admin root" })
      .setProtectedHeader({ alg: "ES256", kid: trusted.privateJwk.kid ?? "" })
      .setIssuer(base.issuer)
      .setAudience(base.audience)
      .setSubject("alice")
      .setExpirationTime("5m")
      .sign(key);
    assert.deepEqual([...(await verifier.verify(`Bearer ${token}`)).scopes], ["packs.read"]);
  });

  test("missing or malformed Authorization headers are refused", async () => {
    for (const header of [undefined, "", "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a b"]) {
      await assert.rejects(
        verifier.verify(header),
        (error) => isPackrunError(error) && error.code === "UNAUTHENTICATED",
      );
    }
  });

  test("alg: none is refused", async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({
      iss: base.issuer,
      aud: base.audience,
      sub: "alice",
      tenant: "acme",
      scope: "packs.read packs.run packs.approve",
      exp: Math.floor(Date.now() / 1000) + 600,
    })}.`;
    assert.match(await refusal(token), /malformed|algorithm|not valid/);
  });

  test("HS256 signed with the trusted public key (algorithm confusion) is refused", async () => {
    const publicJwk = trusted.jwks.keys[0];
    const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
    const token = await new SignJWT({ tenant: "acme", scope: "packs.read" })
      .setProtectedHeader({ alg: "HS256", kid: publicJwk?.kid ?? "" })
      .setIssuer(base.issuer)
      .setAudience(base.audience)
      .setSubject("alice")
      .setExpirationTime("5m")
      .sign(secret);
    assert.match(await refusal(token), /algorithm/);
  });

  test("a token signed by an untrusted key is refused, even with the trusted key id", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const foreign = {
      ...(await exportJWK(privateKey)),
      alg: "ES256",
      kid: trusted.privateJwk.kid ?? "",
    };
    assert.match(await refusal(await mintToken({ ...base, key: foreign })), /signature/);
  });

  test("wrong issuer, wrong audience, expired, not yet valid and subject-less tokens are refused", async () => {
    const key = trusted.privateJwk;
    assert.match(
      await refusal(await mintToken({ ...base, key, issuer: "https://evil.example" })),
      /iss/,
    );
    assert.match(await refusal(await mintToken({ ...base, key, audience: "other" })), /aud/);
    assert.match(
      await refusal(await mintToken({ ...base, key, expiresInSeconds: -120 })),
      /expired/,
    );
    const signing = await (await import("jose")).importJWK(key, "ES256");
    const future = await new SignJWT({ tenant: "acme", scope: "packs.read" })
      .setProtectedHeader({ alg: "ES256", kid: key.kid ?? "" })
      .setIssuer(base.issuer)
      .setAudience(base.audience)
      .setSubject("alice")
      .setNotBefore("10m")
      .setExpirationTime("20m")
      .sign(signing);
    assert.match(await refusal(future), /nbf/);
    const anonymous = await new SignJWT({ tenant: "acme", scope: "packs.read" })
      .setProtectedHeader({ alg: "ES256", kid: key.kid ?? "" })
      .setIssuer(base.issuer)
      .setAudience(base.audience)
      .setExpirationTime("5m")
      .sign(signing);
    assert.match(await refusal(anonymous), /sub/);
  });

  test("a token without a usable tenant is refused", async () => {
    const key = trusted.privateJwk;
    assert.match(await refusal(await mintToken({ ...base, key, tenant: "" })), /tenant/);
    assert.match(await refusal(await mintToken({ ...base, key, tenant: "a b;c" })), /tenant/);
  });

  test("a bad JWKS file is a configuration error naming the variable", async () => {
    await assert.rejects(
      createTokenVerifier(config("/nonexistent/jwks.json")),
      (error) =>
        isPackrunError(error) &&
        error.code === "CONFIG_INVALID" &&
        /PACKRUN_AUTH_JWKS_FILE/.test(error.message),
    );
  });
});
