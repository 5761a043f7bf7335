/**
 * A verifier gets the evidence service's public keys from the gateway without a token, as a JWK
 * Set (parsed here by the third-party `jose` library) or as PEM, and verifies a downloaded bundle
 * with them.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type GatewayStack, startGatewayStack } from "@packrun/gateway/testing";
import { exportSPKI, importJWK, type JWK } from "jose";
import { afterAll, beforeAll, test } from "vitest";
import { type CliRun, runCli } from "./testing/run-cli.ts";

const pack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: published-keys, version: 1.0.0}
spec:
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo hello"]}}
`;

let stack: GatewayStack;
let dir: string;
let env: Record<string, string>;

function cli(args: readonly string[]): Promise<CliRun> {
  return runCli(args, { cwd: dir, env });
}

beforeAll(async () => {
  stack = await startGatewayStack();
  dir = await mkdtemp(path.join(tmpdir(), "packrun-published-keys-"));
  const token = await stack.mintToken();
  await writeFile(path.join(dir, "pack.yaml"), pack);
  await writeFile(path.join(dir, "cli.json"), "{}");
  env = {
    PACKRUN_URL: stack.url,
    PACKRUN_TOKEN: token,
    PACKRUN_CLI_CONFIG: path.join(dir, "cli.json"),
    PACKRUN_TRUSTED_KEYS: "",
  };
});

afterAll(async () => {
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

test("a bundle verifies with the key published at /.well-known/packrun/signing-keys", async () => {
  const ran = await cli(["run", "pack.yaml"]);
  assert.equal(ran.code, 0, `${ran.stdout}\n${ran.stderr}`);
  const id = /^submitted run ([0-9a-f-]{36})/m.exec(ran.stdout)?.[1];
  assert.ok(id !== undefined, ran.stdout);
  const downloaded = await cli(["bundle", id, "-o", "run.tar.gz", "--no-verify"]);
  assert.equal(downloaded.code, 0, downloaded.stderr);

  // No Authorization header: the keys are public.
  const response = await fetch(`${stack.url}/.well-known/packrun/signing-keys`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^application\/(jwk-set\+)?json/);
  const jwks = (await response.json()) as { keys: (JWK & { kid: string })[] };
  assert.ok(jwks.keys.length >= 1, JSON.stringify(jwks));
  const files: string[] = [];
  for (const jwk of jwks.keys) {
    assert.equal(jwk.use, "sig");
    assert.match(jwk.kid, /^[0-9a-f]{64}$/);
    assert.ok(jwk.alg === "EdDSA" || jwk.alg === "ES256", String(jwk.alg));
    assert.equal(jwk.d, undefined, "no private part");
    const file = path.join(dir, `${jwk.kid}.pem`);
    await writeFile(file, await exportSPKI((await importJWK(jwk, jwk.alg)) as CryptoKey));
    files.push(file);
  }
  const verified = await cli(["verify", "run.tar.gz", ...files.flatMap((file) => ["--key", file])]);
  assert.equal(verified.code, 0, `${verified.stdout}\n${verified.stderr}`);
  assert.match(verified.stdout, new RegExp(`^verified: run ${id} .*\\(trusted\\)$`, "m"));

  // The same keys as PEM, also without a token.
  const pem = await fetch(`${stack.url}/.well-known/packrun/signing-keys.pem`);
  assert.equal(pem.status, 200);
  const text = await pem.text();
  for (const jwk of jwks.keys) assert.match(text, new RegExp(`key id ${jwk.kid}`));
  await writeFile(path.join(dir, "published.pem"), text);
  const fromPem = await cli(["verify", "run.tar.gz", "--key", "published.pem"]);
  assert.equal(fromPem.code, 0, `${fromPem.stdout}\n${fromPem.stderr}`);
});
