import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { allScopes, type Scope } from "@packrun/auth";
import { compileErrors, validate } from "@readme/openapi-parser";
import { afterAll, beforeAll, describe, test } from "vitest";
import { expectedApiDocs } from "./api-docs.ts";
import type { ProblemJson } from "./api-schemas.ts";
import type { GatewayApp } from "./gateway-context.ts";
import { buildStandaloneGateway, type StandaloneGateway } from "./testing/standalone-app.ts";

// The services behind the gateway are deliberately unreachable: these tests are about what the
// gateway itself decides (validation, errors, auth, documents), not about runs.
let gateway: StandaloneGateway;
let app: GatewayApp;
let token: (scopes?: readonly Scope[]) => Promise<string>;
const routes: { method: string; url: string }[] = [];

beforeAll(async () => {
  gateway = await buildStandaloneGateway();
  app = gateway.app;
  app.addHook("onRoute", () => {});
  token = (scopes = allScopes) => gateway.token({ scopes });
  await app.ready();
  // printRoutes draws a tree ("├── /api/runs (POST, GET)", "│   └── /:id (GET)"): rebuild the
  // full paths from the nesting depth.
  const prefixes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const at = line.indexOf("── ");
    const match = /^(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line.slice(at + 3));
    if (at < 0 || match?.[1] === undefined) continue;
    const depth = (at - 1) / 4;
    prefixes.length = depth;
    const url = `${prefixes.join("")}${match[1]}`;
    prefixes.push(match[1]);
    for (const method of match[2]?.split(", ") ?? []) routes.push({ method, url });
  }
});
afterAll(async () => {
  await gateway.close();
});

async function request(
  method: "GET" | "POST",
  url: string,
  options: {
    body?: string | object;
    contentType?: string;
    scopes?: readonly Scope[];
    anonymous?: boolean;
  } = {},
) {
  const headers: Record<string, string> = {};
  if (options.anonymous !== true) headers.authorization = `Bearer ${await token(options.scopes)}`;
  if (options.body !== undefined)
    headers["content-type"] = options.contentType ?? "application/json";
  const response = await app.inject({
    method,
    url,
    headers,
    ...(options.body === undefined
      ? {}
      : {
          payload: typeof options.body === "string" ? options.body : JSON.stringify(options.body),
        }),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    body: response.body,
    json: () => response.json() as ProblemJson,
  };
}

describe("problem documents", () => {
  test("a body that does not match the schema names the field", async () => {
    const wrongType = await request("POST", "/api/runs", { body: { manifest: 5 } });
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.headers["content-type"], "application/problem+json; charset=utf-8");
    const problem = wrongType.json();
    assert.equal(problem.code, "REQUEST_INVALID");
    assert.equal(problem.title, "Request invalid");
    assert.equal(problem.status, 400);
    assert.equal(problem.instance, "/api/runs");
    assert.equal(problem.errors?.[0]?.path, "body/manifest");
    assert.match(problem.detail ?? "", /^body\/manifest: must be string$/);

    const unknown = (
      await request("POST", "/api/runs", { body: { manifest: "x", priorty: 3 } })
    ).json();
    assert.deepEqual(unknown.errors, [{ path: "body/priorty", message: "is not a known field" }]);
    const missing = (await request("POST", "/api/packs", { body: {} })).json();
    assert.deepEqual(missing.errors?.[0]?.path, "body/manifest");
    const badQuery = await request("GET", "/api/runs?state=sleeping");
    assert.equal(badQuery.status, 400);
    assert.match(badQuery.json().errors?.[0]?.path ?? "", /^querystring\/state/);
  });

  test("both or neither of manifest and pack is refused before any service is called", async () => {
    for (const body of [{}, { manifest: "x", pack: { name: "p" } }]) {
      const response = await request("POST", "/api/runs", { body });
      assert.equal(response.status, 400);
      assert.match(response.json().detail ?? "", /exactly one of `manifest`/);
    }
  });

  test("malformed JSON, oversized bodies and foreign media types get their own codes", async () => {
    const malformed = await request("POST", "/api/runs", {
      body: "{nope",
      contentType: "application/json",
    });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json().code, "REQUEST_INVALID");
    const large = await request("POST", "/api/packs", {
      body: { manifest: "x".repeat(70 * 1024) },
    });
    assert.equal(large.status, 413);
    assert.equal(large.json().code, "REQUEST_TOO_LARGE");
    const text = await request("POST", "/api/packs", {
      body: "manifest",
      contentType: "text/plain",
    });
    assert.equal(text.status, 415);
    assert.equal(text.json().code, "UNSUPPORTED_MEDIA_TYPE");
  });

  test("unknown endpoints answer ROUTE_NOT_FOUND", async () => {
    const response = await request("GET", "/api/nothing-here?x=1");
    assert.equal(response.status, 404);
    assert.deepEqual(response.json(), {
      type: "https://packrun.dev/errors/route-not-found",
      title: "No such endpoint",
      status: 404,
      detail: "no endpoint GET /api/nothing-here",
      code: "ROUTE_NOT_FOUND",
      instance: "/api/nothing-here",
    });
  });

  test("an unreachable service is a retryable 503 without internal details", async () => {
    const response = await request("GET", "/api/runs");
    assert.equal(response.status, 503);
    const problem = response.json();
    assert.equal(problem.code, "UNAVAILABLE");
    assert.equal(problem.detail, "a packrun service is unavailable; retry shortly");
    assert.doesNotMatch(response.body, /ECONNREFUSED|127\.0\.0\.1|at .*\.ts/);
  });
});

describe("authentication and scopes", () => {
  test("every /api route needs a bearer token", async () => {
    const api = routes.filter(
      (route) =>
        route.method !== "HEAD" && (route.url.startsWith("/api") || route.url.startsWith("/v1")),
    );
    assert.ok(api.length >= 15, `found ${api.length} API routes`);
    for (const route of api) {
      const url = route.url
        .replace(":id", "00000000-0000-4000-8000-000000000000")
        .replace(":digest", `sha256:${"a".repeat(64)}`)
        .replace(":name", "p")
        .replace(":version", "1.0.0");
      const response = await request(route.method as "GET" | "POST", url, {
        anonymous: true,
        ...(route.method === "POST" ? { body: {} } : {}),
      });
      assert.equal(response.status, 401, `${route.method} ${route.url}`);
      assert.equal(response.json().code, "UNAUTHENTICATED");
      assert.equal(response.headers["www-authenticate"], 'Bearer realm="packrun"');
    }
  });

  test("a token without the route's scope is refused", async () => {
    const readOnly = ["packs.read"] as const;
    for (const [method, url, scope] of [
      ["POST", "/api/runs", "packs.run"],
      ["POST", "/api/packs", "packs.write"],
      ["POST", "/api/runs/00000000-0000-4000-8000-000000000000/approve", "packs.approve"],
      ["POST", "/api/runs/00000000-0000-4000-8000-000000000000/cancel", "packs.run"],
    ] as const) {
      const response = await request(method, url, { scopes: readOnly, body: { manifest: "x" } });
      assert.equal(response.status, 403, url);
      assert.equal(response.json().code, "PERMISSION_DENIED");
      assert.match(response.json().detail ?? "", new RegExp(scope.replace(".", "\\.")));
    }
  });
});

describe("documents and operations", () => {
  test("the OpenAPI 3.1 document is valid and describes every route", async () => {
    const response = await request("GET", "/.well-known/openapi", { anonymous: true });
    assert.equal(response.status, 200);
    const document = JSON.parse(response.body) as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { security?: unknown[]; responses: Record<string, unknown> }>
      >;
    };
    assert.equal(document.openapi, "3.1.0");
    const result = await validate(structuredClone(document) as never);
    assert.ok(result.valid, result.valid ? "" : compileErrors(result));
    for (const route of routes) {
      if (route.method === "HEAD") continue;
      const path = route.url.replace(/:([A-Za-z]+)/g, "{$1}");
      const operation = document.paths[path]?.[route.method.toLowerCase()];
      assert.ok(operation, `${route.method} ${path} is documented`);
      if (path.startsWith("/api") || path.startsWith("/v1")) {
        const scope = (operation.security as { bearerAuth: string[] }[] | undefined)?.[0]
          ?.bearerAuth[0];
        assert.match(
          scope ?? "",
          /^packs\.(read|write|run|approve)$/,
          `${path} declares its scope`,
        );
        assert.ok(operation.responses["4XX"], `${path} documents its problem responses`);
      }
    }
    // Verifiers fetch the evidence keys without an account: explicitly public.
    for (const path of [
      "/.well-known/packrun/signing-keys",
      "/.well-known/packrun/signing-keys.pem",
    ]) {
      assert.deepEqual(document.paths[path]?.get?.security, [], `${path} is public`);
    }
  });

  test("liveness, readiness and metrics", async () => {
    assert.equal((await request("GET", "/healthz", { anonymous: true })).status, 200);
    const ready = await request("GET", "/readyz", { anonymous: true });
    assert.equal(ready.status, 503);
    const readiness = JSON.parse(ready.body) as {
      ready: boolean;
      services: Record<string, string>;
    };
    assert.equal(readiness.ready, false);
    assert.deepEqual(Object.keys(readiness.services).sort(), ["evidence", "executor", "planner"]);
    const metrics = await request("GET", "/metrics", { anonymous: true });
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers["content-type"] as string, /^text\/plain/);
    assert.match(
      metrics.body,
      /packrun_gateway_http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} 1/,
    );
  });
});

test("docs/api.md holds the reference generated from the current OpenAPI document", async () => {
  const file = new URL("../../../docs/api.md", import.meta.url);
  const current = await readFile(file, "utf8");
  assert.equal(
    current,
    await expectedApiDocs(current),
    "docs/api.md is out of date: run npm run docs:api",
  );
});
