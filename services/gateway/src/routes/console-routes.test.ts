import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, test } from "vitest";
import { buildStandaloneGateway, type StandaloneGateway } from "../testing/standalone-app.ts";

let assetsDir: string;
let gateway: StandaloneGateway;
let production: StandaloneGateway;
const asset = "assets/index-Ab12Cd34.js";
const indexHtml = "<!doctype html><title>packrun console</title>";

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), "packrun-console-assets-"));
  await mkdir(join(assetsDir, "assets"));
  await writeFile(join(assetsDir, "index.html"), indexHtml);
  await writeFile(join(assetsDir, asset), "console.log('console');");
  // The build's pre-compressed copy, as build-console.ts writes it.
  await writeFile(join(assetsDir, "index.html.gz"), gzipSync(indexHtml));
  gateway = await buildStandaloneGateway({ console: { assetsDir, devSignIn: true } });
  production = await buildStandaloneGateway({ console: { assetsDir } });
});

afterAll(async () => {
  await gateway.close();
  await production.close();
  await rm(assetsDir, { recursive: true, force: true });
});

const local = { host: "127.0.0.1:8080" };

describe("the console's assets", () => {
  test("/ is index.html, revalidated on every load, with a strict Content-Security-Policy", async () => {
    const response = await production.app.inject({ method: "GET", url: "/" });
    assert.equal(response.statusCode, 200);
    assert.match(response.headers["content-type"] ?? "", /^text\/html/);
    assert.match(response.body, /packrun console/);
    assert.equal(response.headers["cache-control"], "no-cache");
    const csp = String(response.headers["content-security-policy"]);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(response.headers["x-content-type-options"], "nosniff");
  });

  test("a browser that takes gzip gets the pre-compressed copy, at / too", async () => {
    for (const url of ["/", "/index.html"]) {
      const response = await production.app.inject({
        method: "GET",
        url,
        headers: { "accept-encoding": "br, gzip" },
      });
      assert.equal(response.statusCode, 200, url);
      assert.equal(response.headers["content-encoding"], "gzip", url);
      assert.match(String(response.headers.vary), /accept-encoding/i);
      assert.equal(gunzipSync(response.rawPayload).toString(), indexHtml);
      assert.equal(response.headers["cache-control"], "no-cache");
    }
  });

  test("hashed assets are cached for good", async () => {
    const response = await production.app.inject({ method: "GET", url: `/${asset}` });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.match(String(response.headers.etag), /./);
  });

  test("other paths stay the API's problem documents, and files outside the build are not served", async () => {
    const unknown = await production.app.inject({ method: "GET", url: "/nope" });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, "ROUTE_NOT_FOUND");
    const traversal = await production.app.inject({
      method: "GET",
      url: "/assets/../../etc/passwd",
    });
    assert.equal(traversal.statusCode, 404);
    const post = await production.app.inject({ method: "POST", url: "/" });
    assert.equal(post.statusCode, 405);
  });

  test("a production gateway has no dev sign-in", async () => {
    const response = await production.app.inject({
      method: "POST",
      url: "/console/dev-session",
      headers: local,
    });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().code, "ROUTE_NOT_FOUND");
  });

  test("the dev endpoints are not in the OpenAPI document", async () => {
    const document = (
      await gateway.app.inject({ method: "GET", url: "/.well-known/openapi" })
    ).json();
    assert.ok(!Object.keys(document.paths).some((path) => path.startsWith("/console")));
    assert.ok(!Object.keys(document.paths).includes("/"));
  });
});

describe("the dev-mode sign-in", () => {
  test("a browser on loopback gets an operator token of every scope", async () => {
    const response = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-session",
      headers: { ...local, origin: "http://127.0.0.1:8080" },
    });
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assert.equal(body.subject, "operator");
    const claims = decodeJwt(body.token);
    assert.equal(claims.sub, "operator");
    assert.equal(claims.tenant, "default");
    assert.match(String(claims.scope), /packs\.approve/);
    // The gateway accepts it: past authentication, the standalone gateway's missing executor answers.
    const runs = await gateway.app.inject({
      method: "GET",
      url: "/api/runs",
      headers: { authorization: `Bearer ${body.token}` },
    });
    assert.ok(![401, 403].includes(runs.statusCode), runs.body);
    const unauthenticated = await gateway.app.inject({ method: "GET", url: "/api/runs" });
    assert.equal(unauthenticated.statusCode, 401);
  });

  test("a peer that is not on loopback is refused", async () => {
    const response = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-session",
      remoteAddress: "10.0.2.100",
      headers: local,
    });
    assert.equal(response.statusCode, 403);
    assert.equal(response.json().code, "PERMISSION_DENIED");
    assert.match(response.json().detail, /loopback/);
  });

  test("a foreign host name (DNS rebinding) is refused", async () => {
    const response = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-session",
      headers: { host: "attacker.example:8080" },
    });
    assert.equal(response.statusCode, 403);
    assert.match(response.json().detail, /attacker\.example/);
  });

  test("a request from another origin is refused", async () => {
    const response = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-session",
      headers: { ...local, origin: "http://localhost:3000" },
    });
    assert.equal(response.statusCode, 403);
    assert.match(response.json().detail, /another origin/);
  });

  test("an approval token is minted only for a signed-in approver, bound to run, gate and plan", async () => {
    const body = { runId: "r-1", gateId: "approve", planHash: "sha256:ab", groups: ["release"] };
    const anonymous = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-approval-token",
      headers: local,
      payload: body,
    });
    assert.equal(anonymous.statusCode, 401);
    const reader = await gateway.token({ scopes: ["packs.read"] });
    const readOnly = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-approval-token",
      headers: { ...local, authorization: `Bearer ${reader}` },
      payload: body,
    });
    assert.equal(readOnly.statusCode, 403);
    assert.match(readOnly.json().detail, /packs\.approve/);
    const approver = await gateway.token({ subject: "operator", tenant: "default" });
    const remote = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-approval-token",
      remoteAddress: "192.168.1.9",
      headers: { ...local, authorization: `Bearer ${approver}` },
      payload: body,
    });
    assert.equal(remote.statusCode, 403);
    const minted = await gateway.app.inject({
      method: "POST",
      url: "/console/dev-approval-token",
      headers: { ...local, authorization: `Bearer ${approver}` },
      payload: body,
    });
    assert.equal(minted.statusCode, 200);
    const claims = decodeJwt(minted.json().token);
    assert.equal(claims.pack_run_id, "r-1");
    assert.equal(claims.pack_gate_id, "approve");
    assert.equal(claims.pack_plan_hash, "sha256:ab");
    assert.deepEqual(claims.groups, ["release"]);
    assert.equal(claims.scope, "packs.approve");
    assert.ok(Number(claims.exp) - Number(claims.iat) <= 120);
  });
});
