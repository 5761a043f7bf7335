/**
 * The public key routes after a rotation: the active and the retired key are both published, as
 * a JWK Set that the third-party `jose` library imports and as PEM that OpenSSL reads.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateSigningKeyPem, loadSigningKey } from "@packrun/attestation";
import { generateLocalSigningKey } from "@packrun/auth";
import { createLogger } from "@packrun/logging";
import { exportSPKI, importJWK, type JWK } from "jose";
import { afterAll, beforeAll, test } from "vitest";
import { buildGatewayApp } from "../gateway-app.ts";
import type { GatewayApp } from "../gateway-context.ts";
import { createGatewayMetrics } from "../gateway-metrics.ts";
import { createServiceClients, type ServiceClients } from "../service-clients.ts";
import { createTokenVerifier } from "../token-verifier.ts";

const run = promisify(execFile);
const active = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
const retired = loadSigningKey(generateSigningKeyPem("ed25519"));
let app: GatewayApp;
let clients: ServiceClients;
let dir: string;
let calls = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-signing-keys-"));
  const tokenKey = await generateLocalSigningKey();
  await writeFile(join(dir, "jwks.json"), JSON.stringify(tokenKey.jwks));
  clients = createServiceClients({
    plannerUrl: "http://127.0.0.1:9",
    executorUrl: "http://127.0.0.1:9",
    evidenceUrl: "http://127.0.0.1:9",
  });
  // The evidence service's answer after a rotation: the new signing key, then the retired one.
  Object.assign(clients.evidence, {
    listVerificationKeys: async () => {
      calls++;
      return {
        keys: [
          { ...active, active: true },
          { ...retired, active: false },
        ].map(({ keyId, algorithm, publicKeyPem, active }) => ({
          keyId,
          algorithm,
          publicKeyPem,
          active,
        })),
      };
    },
  });
  app = await buildGatewayApp({
    clients,
    verifier: await createTokenVerifier({
      jwksFile: join(dir, "jwks.json"),
      issuer: "packrun-test",
      audience: "packrun",
      algorithms: ["ES256"],
      clockToleranceSeconds: 30,
      tenantClaim: "tenant",
      groupsClaim: "groups",
    }),
    metrics: createGatewayMetrics(),
    logger: createLogger({ service: "gateway-test", level: "silent" }),
    bodyLimitBytes: 64 * 1024,
    heartbeatMs: 15_000,
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
  clients.close();
  await rm(dir, { recursive: true, force: true });
});

test("the JWK Set lists the active and the retired key without a token; jose imports both", async () => {
  const response = await app.inject({ method: "GET", url: "/.well-known/packrun/signing-keys" });
  assert.equal(response.statusCode, 200, response.body);
  assert.match(response.headers["content-type"] as string, /^application\/jwk-set\+json/);
  assert.match(response.headers["cache-control"] as string, /public/);
  const { keys } = response.json() as { keys: (JWK & { kid: string })[] };
  assert.deepEqual(
    keys.map((jwk) => [jwk.kid, jwk.kty, jwk.crv, jwk.alg, jwk.use]),
    [
      [active.keyId, "EC", "P-256", "ES256", "sig"],
      [retired.keyId, "OKP", "Ed25519", "EdDSA", "sig"],
    ],
  );
  for (const [index, jwk] of keys.entries()) {
    const pem = await exportSPKI((await importJWK(jwk, jwk.alg)) as CryptoKey);
    assert.equal(pem.trim(), [active, retired][index]?.publicKeyPem.trim());
  }
});

test("anonymous requests are answered from a short-lived copy, not one evidence call each", async () => {
  for (let i = 0; i < 5; i++) {
    const url =
      i % 2 === 0 ? "/.well-known/packrun/signing-keys" : "/.well-known/packrun/signing-keys.pem";
    assert.equal((await app.inject({ method: "GET", url })).statusCode, 200);
  }
  assert.equal(calls, 1);
});

test("the PEM form names each key and OpenSSL reads every key in it", async () => {
  const response = await app.inject({
    method: "GET",
    url: "/.well-known/packrun/signing-keys.pem",
  });
  assert.equal(response.statusCode, 200, response.body);
  assert.match(response.body, new RegExp(`# key id ${active.keyId} \\(ecdsa-p256, active\\)`));
  assert.match(response.body, new RegExp(`# key id ${retired.keyId} \\(ed25519, retired\\)`));
  const blocks = response.body.split(/(?=# key id )/);
  assert.equal(blocks.length, 2);
  for (const [index, block] of blocks.entries()) {
    const file = join(dir, `key-${index}.pem`);
    await writeFile(file, block);
    const der = await run("sh", [
      "-c",
      `openssl pkey -pubin -in "${file}" -outform DER | sha256sum`,
    ]);
    assert.equal(der.stdout.split(" ")[0], [active, retired][index]?.keyId);
  }
});
