/**
 * Issue 8, item 17: a tenant that knows (or guesses) another tenant's run, artifact, pack and
 * approval ids gets 404 on every route of the API, and the answer is the same as for an id that
 * does not exist at all, so it cannot even learn that the id exists.
 *
 * The routes come from the gateway's own OpenAPI document, so a route added later is covered
 * without touching this test (and one whose path parameters this test cannot fill fails it).
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, test } from "vitest";
import type { RestClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  eventsWhen,
  gatedManifest,
  manifest,
  type RunJson,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  waitForRun,
} from "./support/stack.ts";

const withArtifact = manifest(
  "tenant-secrets",
  `  steps:
    - id: build
      run:
        uses: builtin:shell
        with: {argv: [sh, -c, "echo confidential > report.txt; echo built"]}
        artifacts: [{name: report, path: report.txt}]
`,
);

const gated = gatedManifest("tenant-gated");

interface Operation {
  parameters?: { name: string; in: string }[];
}

let stack: SecurityStack;
let acme: RestClient;
let globex: RestClient;
/** A schedule of acme's. */
let schedule: string;
let finished: RunJson;
let waiting: RunJson;
let digest: string;

beforeAll(async () => {
  stack = await startSecurityStack();
  acme = await stack.client({ tenant: "acme" });
  const published = await acme.post("/api/packs", withArtifact);
  assert.equal(published.status, 201, JSON.stringify(published.body));
  finished = await waitForRun(
    acme,
    (await submitRun(acme, { pack: { name: "tenant-secrets", version: "1.0.0" } })).id,
  );
  assert.equal(finished.state, "succeeded");
  waiting = await waitForRun(
    acme,
    (await submitRun(acme, { manifest: gated })).id,
    (run) => run.state === "awaiting-approval",
  );
  // The attestation is written once the run is finalised; wait for it so that every evidence
  // route has something real to leak.
  const deadline = Date.now() + 20_000;
  while ((await acme.get(`/api/runs/${finished.id}/attestation`)).status !== 200) {
    assert.ok(Date.now() < deadline, "the run was never finalised");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const artifacts = await acme.get<{ artifacts: { digest: string }[] }>(
    `/api/runs/${finished.id}/artifacts`,
  );
  digest = artifacts.body.artifacts[0]?.digest ?? "";
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  const created = await acme.post<{ id: string }>("/api/schedules", {
    name: "tenant-schedule",
    pack: { name: "tenant-secrets", version: "1.0.0" },
    cron: "0 0 1 1 *",
    timeZone: "UTC",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  schedule = created.body.id;
  // Every scope and the right groups, and an approval binding to acme's gate: only the tenant
  // is wrong.
  globex = await stack.client({
    tenant: "globex",
    subject: "eve",
    groups: ["release-managers"],
    approval: { runId: waiting.id, gateId: "release", planHash: waiting.planHash },
  });
});
afterAll(() => stack.close());

/** The path of `template` with its parameters filled for a run id (and a schedule id). */
function fill(template: string, runId: string, scheduleId = schedule): string {
  const values: Record<string, string> = {
    id: runId,
    schedule: scheduleId,
    digest,
    name: "tenant-secrets",
    gate: "release",
    version: "1.0.0",
  };
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = values[name];
    assert.ok(value !== undefined, `no value for path parameter {${name}} of ${template}`);
    return encodeURIComponent(value);
  });
}

/** A problem document with the guessed id replaced, for comparing "exists" with "does not". */
function normalised(body: unknown, ...ids: string[]): unknown {
  let text = JSON.stringify(body);
  for (const id of ids) text = text.replaceAll(id, "<id>");
  return JSON.parse(text);
}

async function call(
  client: RestClient,
  method: string,
  path: string,
): Promise<{ status: number; body: unknown; type: string }> {
  const response =
    method === "post"
      ? await client.post(path, {})
      : method === "delete"
        ? await client.delete(path)
        : await client.get(path, { accept: "*/*" });
  return {
    status: response.status,
    body: response.body,
    type: response.headers.get("content-type") ?? "",
  };
}

test("every route with a path parameter answers 404 to another tenant, exactly as for an unknown id", async () => {
  const document = (await (await fetch(`${stack.url}/.well-known/openapi`)).json()) as {
    paths: Record<string, Record<string, Operation>>;
  };
  const routes = Object.entries(document.paths).flatMap(([template, operations]) =>
    Object.entries(operations)
      .filter(([, operation]) => (operation.parameters ?? []).some((p) => p.in === "path"))
      .map(([method]) => ({ template, method })),
  );
  // The routes this test knows exist; a new one is covered automatically.
  for (const expected of [
    "get /api/runs/{id}",
    "post /api/runs/{id}/cancel",
    "post /api/runs/{id}/approve",
    "get /api/runs/{id}/logs",
    "get /api/runs/{id}/artifacts",
    "get /api/runs/{id}/artifacts/{digest}",
    "get /api/runs/{id}/attestation",
    "get /api/runs/{id}/bundle",
    "get /api/packs/{name}/versions",
    "get /api/packs/{name}/versions/{version}",
  ])
    assert.ok(
      routes.some((route) => `${route.method} ${route.template}` === expected),
      `${expected} is in the OpenAPI document`,
    );

  const unknownId = crypto.randomUUID();
  const checked: string[] = [];
  for (const { template, method } of routes) {
    const target = method === "post" ? waiting.id : finished.id;
    const path = fill(template, target);
    // Control: the owner can use the id (writes are not sent, they would change the run).
    if (method === "get") {
      const own = await call(acme, method, path);
      assert.equal(own.status, 200, `${method} ${path} as the owner: ${JSON.stringify(own.body)}`);
    }
    const foreign = await call(globex, method, path);
    assert.equal(
      foreign.status,
      404,
      `${method} ${path} as globex: ${JSON.stringify(foreign.body)}`,
    );
    assert.match(foreign.type, /application\/problem\+json/, `${method} ${path}`);
    assert.ok(
      !JSON.stringify(foreign.body).includes("confidential"),
      `${method} ${path}: nothing of the content`,
    );
    // The same request for an id that exists nowhere: the same answer.
    const guessed =
      template.includes("{id}") || template.includes("{schedule}")
        ? await call(globex, method, fill(template, unknownId, unknownId))
        : await call(globex, method, path.replace("tenant-secrets", "no-such-pack"));
    assert.equal(guessed.status, 404, `${method} ${template} with an unknown id`);
    assert.deepEqual(
      normalised(foreign.body, target, "tenant-secrets", schedule),
      normalised(guessed.body, unknownId, "no-such-pack"),
      `${method} ${template}: another tenant's id is indistinguishable from an unknown one`,
    );
    checked.push(`${method} ${template}`);
  }
  assert.ok(checked.length >= 10, checked.join(", "));
});

test("the log stream, resumption and filters give 404 too", async () => {
  for (const query of ["", "?format=ndjson", "?follow=false", "?step=build", "?after=1"]) {
    const response = await fetch(`${stack.url}/api/runs/${finished.id}/logs${query}`, {
      headers: {
        authorization: `Bearer ${await stack.mintToken({ tenant: "globex" })}`,
        accept: "text/event-stream",
        "last-event-id": "1",
      },
    });
    assert.equal(response.status, 404, query);
    assert.ok(!(await response.text()).includes("built"), query);
  }
});

test("lists, references by name and simulations do not reach another tenant's packs or runs", async () => {
  const runs = await globex.get<{ runs: RunJson[] }>("/api/runs?pageSize=200");
  assert.equal(runs.status, 200);
  assert.deepEqual(runs.body.runs, []);
  const packs = await globex.get<{ packs: unknown[] }>("/api/packs");
  assert.deepEqual(packs.body.packs, []);
  const byRef = await globex.post<{ code: string }>("/api/runs", {
    pack: { name: "tenant-secrets", version: "1.0.0" },
  });
  assert.equal(byRef.status, 404);
  assert.equal(byRef.body.code, "PACK_NOT_FOUND");
  for (const path of ["/api/simulations", "/v1/task-runner/simulations"]) {
    const simulated = await globex.post<{ code: string }>(path, {
      pack: { name: "tenant-secrets" },
    });
    assert.equal(simulated.status, 404, path);
    assert.equal(simulated.body.code, "PACK_NOT_FOUND", path);
  }
  // Publishing the same name in globex is globex's own pack, not a collision with acme's.
  const own = await globex.post("/api/packs", withArtifact);
  assert.equal(own.status, 201);
});

test("the other tenant's attempts left acme's runs untouched and its evidence clean", async () => {
  const gate = await acme.get<RunJson>(`/api/runs/${waiting.id}`);
  assert.equal(gate.body.state, "awaiting-approval");
  assert.deepEqual(
    gate.body.gates.map((g) => g.decisions.length),
    [0],
  );
  const events = await eventsWhen(stack.url, await stack.mintToken(), waiting.id, (log) =>
    log.some((event) => event.type === "run.awaiting-approval"),
  );
  assert.ok(
    !events.some((event) => event.type.startsWith("gate.")),
    "no approval decision or refusal was written by the other tenant",
  );
  const cancelled = await acme.post<RunJson>(`/api/runs/${waiting.id}/cancel`, { reason: "done" });
  assert.equal(cancelled.status, 200);
});
