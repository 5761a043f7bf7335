/**
 * The REST gateway against independent clients and validators: every real response (errors
 * included) validated with Ajv against the served OpenAPI document, `redocly lint` on that
 * document, 405 with Allow, an `eventsource` client that stops after a finished stream, ETag
 * and Range on downloads, and promtool on the Prometheus exposition.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createRpcMetrics } from "@packrun/telemetry";
import { dereference } from "@readme/openapi-parser";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RunJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";

const run = promisify(execFile);

const artifactPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: numbers, version: 1.0.0}
spec:
  steps:
    - id: count
      run: {uses: builtin:shell, with: {script: 'echo counting; seq 1 3000 > numbers.txt'}, artifacts: [{name: numbers, path: numbers.txt}]}
`;

interface Operation {
  responses: Record<
    string,
    { content?: Record<string, { schema: object }>; headers?: Record<string, unknown> }
  >;
}
interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
}

let stack: GatewayStack;
let alice: RestClient;
let token: string;
let document: OpenApi;
let finished: RunJson;
let artifact: { digest: string; sizeBytes: number };
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);

beforeAll(async () => {
  stack = await startGatewayStack({ metricsPorts: { planner: 0, executor: 0, evidence: 0 } });
  token = await stack.mintToken();
  alice = restClient(stack.url, token);
  const served = await fetch(`${stack.url}/.well-known/openapi`);
  document = (await dereference((await served.json()) as never)) as unknown as OpenApi;
  const submitted = await submitRun(alice, { manifest: artifactPack });
  finished = await waitForRun(alice, submitted.id);
  assert.equal(finished.state, "succeeded");
  const listed = await alice.get<{ artifacts: { digest: string; sizeBytes: number }[] }>(
    `/api/runs/${finished.id}/artifacts`,
  );
  artifact = listed.body.artifacts[0] as { digest: string; sizeBytes: number };
  // The attestation (and so the bundle) is written just after the run ends.
  for (let i = 0; i < 100; i++) {
    if ((await alice.get(`/api/runs/${finished.id}/attestation`)).status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 60_000);
afterAll(() => stack.close());

/** GET (or another method) with the bearer token and extra headers; the body as bytes. */
async function call(
  path: string,
  init: { method?: string; headers?: Record<string, string> } = {},
) {
  const response = await fetch(`${stack.url}${path}`, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${token}`, ...init.headers },
  });
  return { response, body: Buffer.from(await response.arrayBuffer()) };
}

/**
 * Asserts the document describes this response: its status (or `4XX`/`5XX`), its media type,
 * and (for JSON media types) its body against the schema, with Ajv.
 */
function assertDocumented(
  template: string,
  method: string,
  response: Response,
  body: Buffer,
): void {
  const operation = document.paths[template]?.[method.toLowerCase()];
  assert.ok(operation, `${method} ${template} is documented`);
  const status = String(response.status);
  const described = operation.responses[status] ?? operation.responses[`${status[0]}XX`];
  assert.ok(described, `${method} ${template} documents status ${status}`);
  for (const name of Object.keys(described.headers ?? {}))
    assert.ok(response.headers.has(name), `${method} ${template} ${status} sends ${name}`);
  if (described.content === undefined || body.length === 0) {
    assert.equal(body.length, 0, `${method} ${template} ${status} has no documented body`);
    return;
  }
  const mediaType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  const entry = described.content[mediaType];
  assert.ok(
    entry,
    `${method} ${template} ${status}: ${mediaType} is one of ${Object.keys(described.content)}`,
  );
  if (!/[/+]json$/.test(mediaType)) return;
  const validate = ajv.compile(entry.schema);
  assert.ok(
    validate(JSON.parse(body.toString("utf8"))),
    `${method} ${template} ${status}: ${ajv.errorsText(validate.errors)}`,
  );
}

describe("the OpenAPI document describes what the gateway sends", () => {
  test("real responses, errors included, validate against it", async () => {
    const id = finished.id;
    const cases: [string, string, Record<string, string>?][] = [
      ["/api/runs", "/api/runs"],
      [`/api/runs/${id}`, "/api/runs/{id}"],
      ["/api/runs/no-such-run", "/api/runs/{id}"],
      ["/api/runs?state=nonsense", "/api/runs"],
      [`/api/runs/${id}/artifacts`, "/api/runs/{id}/artifacts"],
      [`/api/runs/${id}/artifacts/${artifact.digest}`, "/api/runs/{id}/artifacts/{digest}"],
      [
        `/api/runs/${id}/artifacts/${artifact.digest}`,
        "/api/runs/{id}/artifacts/{digest}",
        { range: "bytes=10-19" },
      ],
      [
        `/api/runs/${id}/artifacts/${artifact.digest}`,
        "/api/runs/{id}/artifacts/{digest}",
        { range: "bytes=999999-" },
      ],
      [
        `/api/runs/${id}/artifacts/${artifact.digest}`,
        "/api/runs/{id}/artifacts/{digest}",
        { "if-none-match": `"${artifact.digest}"` },
      ],
      [`/api/runs/${id}/attestation`, "/api/runs/{id}/attestation"],
      [`/api/runs/${id}/bundle`, "/api/runs/{id}/bundle"],
      [`/api/runs/${id}/logs?follow=false&format=ndjson`, "/api/runs/{id}/logs"],
      ["/api/verification-keys", "/api/verification-keys"],
      ["/api/packs", "/api/packs"],
      ["/healthz", "/healthz"],
      ["/metrics", "/metrics"],
    ];
    const statuses = new Set<number>();
    for (const [path, template, headers] of cases) {
      const { response, body } = await call(path, { headers: headers ?? {} });
      statuses.add(response.status);
      assertDocumented(template, "GET", response, body);
    }
    const anonymous = await fetch(`${stack.url}/api/runs`);
    assertDocumented("/api/runs", "GET", anonymous, Buffer.from(await anonymous.arrayBuffer()));
    const invalid = await fetch(`${stack.url}/api/runs`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ nothing: true }),
    });
    assertDocumented("/api/runs", "POST", invalid, Buffer.from(await invalid.arrayBuffer()));
    for (const status of [200, 206, 304, 400, 404, 416])
      assert.ok(statuses.has(status), `covered ${status}`);
  });

  test("redocly lint with the recommended rules reports no errors (nor warnings)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "packrun-openapi-"));
    const file = join(dir, "openapi.json");
    await writeFile(file, await (await fetch(`${stack.url}/.well-known/openapi`)).text());
    const result = await run(
      "redocly",
      ["lint", file, "--extends", "recommended", "--format", "json"],
      { env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" } },
    ).catch((error: { stdout: string; stderr: string }) => error);
    const report = JSON.parse(result.stdout) as {
      totals: { errors: number; warnings: number };
      problems: { ruleId: string; severity: string; message: string }[];
    };
    const problems = JSON.stringify(report.problems, null, 1);
    assert.equal(report.totals.errors, 0, problems);
    // Warnings too: the recommended set's warnings (e.g. no 4XX response) are cheap to keep at 0.
    assert.equal(report.totals.warnings, 0, problems);
  });

  test("every operation has an operationId; public ones declare security: []", () => {
    const ids = new Set<string>();
    for (const [path, operations] of Object.entries(document.paths))
      for (const [method, operation] of Object.entries(operations)) {
        const { operationId, security } = operation as { operationId?: string; security?: [] };
        assert.ok(operationId, `${method} ${path} has an operationId`);
        assert.ok(!ids.has(operationId), `${operationId} is unique`);
        ids.add(operationId);
        assert.ok(security !== undefined, `${method} ${path} declares its security`);
      }
    const liveness = document.paths["/healthz"]?.get as { security?: unknown } | undefined;
    assert.deepEqual(liveness?.security, []);
  });
});

test("an unsupported method on a known path answers 405 with Allow", async () => {
  const { response, body } = await call(`/api/runs/${finished.id}`, { method: "DELETE" });
  assert.equal(response.status, 405);
  assert.equal(response.headers.get("allow"), "GET, HEAD");
  assert.equal(response.headers.get("content-type"), "application/problem+json; charset=utf-8");
  assert.equal(JSON.parse(body.toString()).code, "METHOD_NOT_ALLOWED");
  const runs = await call("/api/runs", { method: "PUT" });
  assert.equal(runs.response.headers.get("allow"), "GET, HEAD, POST");
  assert.equal((await call("/api/nothing-here", { method: "DELETE" })).response.status, 404);
});

test("an EventSource stops after a finished run's stream: its reconnect gets 204", async () => {
  const statuses: number[] = [];
  const source = new EventSource(`${stack.url}/api/runs/${finished.id}/logs`, {
    fetch: async (input, init) => {
      const response = await fetch(input, {
        ...init,
        headers: { ...init?.headers, authorization: `Bearer ${token}` },
      });
      statuses.push(response.status);
      return response;
    },
  });
  const seen: string[] = [];
  source.addEventListener("run-event", () => seen.push("run-event"));
  source.addEventListener("end", () => seen.push("end"));
  // The stock client reconnects ~3 s after the server closes; the 204 must close it for good.
  const deadline = Date.now() + 15_000;
  while (source.readyState !== EventSource.CLOSED && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 100));
  const state = source.readyState;
  source.close();
  assert.equal(state, EventSource.CLOSED, `statuses so far: ${statuses}`);
  assert.deepEqual(statuses, [200, 204]);
  assert.equal(seen.at(-1), "end");
  assert.ok(seen.includes("run-event"));
}, 30_000);

describe("downloads honour If-None-Match and Range", () => {
  test("an artifact: 304, 206, 416", async () => {
    const path = `/api/runs/${finished.id}/artifacts/${artifact.digest}`;
    const full = await call(path);
    assert.equal(full.response.status, 200);
    assert.equal(full.body.length, Number(artifact.sizeBytes));
    const etag = full.response.headers.get("etag") ?? "";
    assert.equal(etag, `"${artifact.digest}"`);
    assert.equal(full.response.headers.get("accept-ranges"), "bytes");
    const cached = await call(path, { headers: { "if-none-match": etag } });
    assert.equal(cached.response.status, 304);
    assert.equal(cached.body.length, 0);
    const part = await call(path, { headers: { range: "bytes=100-199" } });
    assert.equal(part.response.status, 206);
    assert.equal(part.response.headers.get("content-range"), `bytes 100-199/${full.body.length}`);
    assert.deepEqual(part.body, full.body.subarray(100, 200));
    const tail = await call(path, { headers: { range: "bytes=-10" } });
    assert.deepEqual(tail.body, full.body.subarray(-10));
    const stale = await call(path, { headers: { range: "bytes=0-9", "if-range": '"other"' } });
    assert.equal(stale.response.status, 200);
    const past = await call(path, { headers: { range: `bytes=${full.body.length}-` } });
    assert.equal(past.response.status, 416);
    assert.equal(past.response.headers.get("content-range"), `bytes */${full.body.length}`);
    assert.equal(JSON.parse(past.body.toString()).code, "RANGE_NOT_SATISFIABLE");
  });

  test("a bundle download resumes where it stopped", async () => {
    const path = `/api/runs/${finished.id}/bundle`;
    const full = await call(path);
    assert.equal(full.response.status, 200);
    const etag = full.response.headers.get("etag") ?? "";
    assert.match(etag, /^"sha256:[0-9a-f]{64}"$/);
    assert.equal(full.response.headers.get("content-length"), String(full.body.length));
    assert.equal((await call(path, { headers: { "if-none-match": etag } })).response.status, 304);
    const head = await call(path, { headers: { range: "bytes=0-511" } });
    const rest = await call(path, { headers: { range: "bytes=512-", "if-range": etag } });
    assert.equal(head.response.status, 206);
    assert.equal(rest.response.status, 206);
    assert.deepEqual(Buffer.concat([head.body, rest.body]), full.body);
  });
});

test("/metrics and the services' metrics pass promtool check metrics", async () => {
  const lint = async (text: string) => {
    const child = execFile("promtool", ["check", "metrics"]);
    let output = "";
    child.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    child.stdin?.end(text);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    return { code, output };
  };
  const gateway = await (await fetch(`${stack.url}/metrics`)).text();
  assert.match(gateway, /^packrun_runs\{state="succeeded"\} 1$/m);
  // Resource usage of the run's step: wall time, CPU time and peak memory histograms.
  for (const name of [
    "packrun_step_attempt_duration_seconds",
    "packrun_step_attempt_cpu_seconds",
    "packrun_step_attempt_peak_memory_bytes",
  ]) {
    assert.match(gateway, new RegExp(`^# TYPE ${name} histogram$`, "m"));
    assert.match(gateway, new RegExp(`^${name}_count 1$`, "m"));
  }
  assert.match(gateway, /^packrun_step_attempt_peak_memory_bytes_bucket\{le="1048576"\} \d+$/m);
  const texts: [string, string][] = [
    ["gateway", gateway],
    ["rpc registry", await createRpcMetrics("planner").registry.metrics()],
  ];
  for (const [service, url] of Object.entries(stack.metricsUrls))
    texts.push([service, await (await fetch(url)).text()]);
  for (const [name, text] of texts) {
    const result = await lint(text);
    assert.equal(result.output, "", `${name}: ${result.output}`);
    assert.equal(result.code, 0, name);
    assert.doesNotMatch(text, /^# TYPE \S+_total gauge$/m);
  }
});
