import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RunEventJson, RunJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";
import { gatedPack } from "./testing/sample-packs.ts";

/**
 * `prepare` counts its runs in `<dir>/prepare.count` and publishes a greeting; `flaky` fails
 * until `<dir>/fixed` exists and needs the secret; `finish` reads prepare's output.
 */
const flakyPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: flaky-release, version: 1.0.0}
spec:
  inputs: [{name: dir, type: string, required: true}]
  secrets: [{name: token}]
  steps:
    - id: prepare
      run:
        uses: builtin:shell
        with:
          env: {DIR: "{{ inputs.dir }}"}
          script: 'echo x >> "$DIR/prepare.count"; echo "greeting=hello" >> "$PACKRUN_OUTPUT"'
    - id: flaky
      run:
        uses: builtin:shell
        with:
          env: {DIR: "{{ inputs.dir }}", TOKEN: "{{ secrets.token }}"}
          script: 'test -n "$TOKEN" && test -f "$DIR/fixed" || { echo "not fixed yet" >&2; exit 7; }'
    - id: finish
      run:
        uses: builtin:shell
        with:
          env: {G: "{{ steps.prepare.outputs.greeting }}"}
          script: 'echo "final=$G world" >> "$PACKRUN_OUTPUT"'
`;

let stack: GatewayStack;
let alice: RestClient;

beforeAll(async () => {
  stack = await startGatewayStack();
  alice = restClient(stack.url, await stack.mintToken({ groups: ["release-managers"] }));
});
afterAll(() => stack.close());

function stepOf(run: RunJson, id: string): RunJson["steps"][number] {
  const step = run.steps.find((candidate) => candidate.id === id);
  assert.ok(step, `no step ${id}`);
  return step;
}

async function countLines(file: string): Promise<number> {
  return (await readFile(file, "utf8")).split("\n").filter(Boolean).length;
}

async function predicateOf(runId: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const response = await alice.get<{ envelope: { payload: string } }>(
      `/api/runs/${runId}/attestation`,
    );
    if (response.status === 200) {
      const statement = JSON.parse(
        Buffer.from(response.body.envelope.payload, "base64").toString("utf8"),
      ) as { predicate: Record<string, unknown> };
      return statement.predicate;
    }
    assert.ok(Date.now() < deadline, `no attestation for ${runId}: ${response.status}`);
    await sleep(100);
  }
}

async function startAgain(
  client: RestClient,
  runId: string,
  how: "rerun" | "resume",
  body: unknown,
): Promise<{ status: number; body: { run: RunJson; code?: string; detail?: string } }> {
  return client.post(`/api/runs/${runId}/${how}`, body);
}

describe("rerun and resume", () => {
  let dir: string;
  let failed: RunJson;
  let resumed: RunJson;

  beforeAll(async () => {
    dir = await stepSharedDir("rerun-");
    const submitted = await submitRun(alice, {
      manifest: flakyPack,
      inputs: { dir },
      secrets: { token: "s3cret-token" },
    });
    failed = await waitForRun(alice, submitted.id);
  });

  test("the original fails at the flaky step, after prepare ran once", async () => {
    assert.equal(failed.state, "failed");
    assert.equal(stepOf(failed, "flaky").exitCode, 7);
    assert.equal(await countLines(join(dir, "prepare.count")), 1);
  });

  test("refused: missing secrets, another tenant's run, a run that has not finished", async () => {
    const noSecrets = await startAgain(alice, failed.id, "resume", {});
    assert.equal(noSecrets.status, 400, JSON.stringify(noSecrets.body));
    assert.equal(noSecrets.body.code, "SECRET_MISSING");
    assert.match(noSecrets.body.detail ?? "", /secret "token" is declared but not supplied/);
    const globex = restClient(stack.url, await stack.mintToken({ tenant: "globex" }));
    for (const how of ["rerun", "resume"] as const) {
      const foreign = await startAgain(globex, failed.id, how, { secrets: { token: "x" } });
      assert.equal(foreign.status, 404, JSON.stringify(foreign.body));
      assert.equal(foreign.body.code, "RUN_NOT_FOUND");
    }
    const waiting = await submitRun(alice, { manifest: gatedPack("rerun-gated") });
    await waitForRun(alice, waiting.id, (run) => run.state === "awaiting-approval");
    for (const how of ["rerun", "resume"] as const) {
      const busy = await startAgain(alice, waiting.id, how, {});
      assert.equal(busy.status, 409, JSON.stringify(busy.body));
      assert.equal(busy.body.code, "RUN_NOT_FINISHED");
      assert.match(busy.body.detail ?? "", /is still awaiting-approval/);
    }
    const reader = restClient(stack.url, await stack.mintToken({ scopes: ["packs.read"] }));
    for (const how of ["rerun", "resume"] as const) {
      const unscoped = await startAgain(reader, failed.id, how, { secrets: { token: "x" } });
      assert.equal(unscoped.status, 403, JSON.stringify(unscoped.body));
    }
    assert.equal((await alice.post(`/api/runs/${waiting.id}/cancel`, {})).status, 200);
    // Nothing was started by the refusals.
    const runs = await alice.get<{ runs: RunJson[] }>("/api/runs?pack=flaky-release");
    assert.deepEqual(
      runs.body.runs.map((run) => run.id),
      [failed.id],
    );
  });

  test("resume keeps the succeeded step with its outputs and runs from the failed one", async () => {
    await writeFile(join(dir, "fixed"), "");
    const response = await startAgain(alice, failed.id, "resume", {
      secrets: { token: "s3cret-token" },
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    assert.notEqual(response.body.run.id, failed.id);
    resumed = await waitForRun(alice, response.body.run.id);
    assert.equal(resumed.state, "succeeded", resumed.reason ?? "");
    assert.equal(resumed.planHash, failed.planHash);
    assert.deepEqual(resumed.rerunOf, { runId: failed.id, mode: "resume" });
    // prepare did not run again: its count is still 1, its result is the original's.
    assert.equal(await countLines(join(dir, "prepare.count")), 1);
    const prepare = stepOf(resumed, "prepare");
    assert.equal(prepare.state, "succeeded");
    assert.match(prepare.reason ?? "", new RegExp(`kept from run ${failed.id}`));
    assert.equal(prepare.startedAt, stepOf(failed, "prepare").startedAt);
    assert.deepEqual(stepOf(resumed, "finish").outputs, { final: "hello world" });
    assert.equal(stepOf(resumed, "flaky").state, "succeeded");

    const original = await alice.get<RunJson>(`/api/runs/${failed.id}`);
    assert.deepEqual(original.body.reruns, [{ runId: resumed.id, mode: "resume" }]);
    assert.equal(original.body.state, "failed");

    // The event log is complete once the run is attested.
    const predicate = await predicateOf(resumed.id);
    assert.deepEqual(predicate.rerunOf, {
      runId: failed.id,
      mode: "resume",
      keptSteps: ["prepare"],
    });
    const events = (await alice.sse(`/api/runs/${resumed.id}/logs?follow=false`))
      .filter((message) => message.event === "run-event")
      .map((message) => JSON.parse(message.data) as RunEventJson);
    const rerunEvent = events.find((event) => event.type === "run.rerun");
    assert.ok(rerunEvent, JSON.stringify(events.map((event) => event.type)));
    assert.deepEqual(rerunEvent.metadata, {
      rerunOf: failed.id,
      mode: "resume",
      keptSteps: ["prepare"],
    });

    assert.equal(predicate.planHash, failed.planHash);
  });

  test("rerun runs every step again with the same plan hash and inputs", async () => {
    const response = await startAgain(alice, failed.id, "rerun", {
      secrets: { token: "another-token" },
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    const rerun = await waitForRun(alice, response.body.run.id);
    assert.equal(rerun.state, "succeeded", rerun.reason ?? "");
    assert.equal(rerun.planHash, failed.planHash);
    assert.deepEqual(rerun.rerunOf, { runId: failed.id, mode: "rerun" });
    assert.equal(await countLines(join(dir, "prepare.count")), 2);
    assert.doesNotMatch(stepOf(rerun, "prepare").reason ?? "", /kept from/);

    const original = await alice.get<RunJson>(`/api/runs/${failed.id}`);
    assert.deepEqual(original.body.reruns, [
      { runId: resumed.id, mode: "resume" },
      { runId: rerun.id, mode: "rerun" },
    ]);
    const predicate = await predicateOf(rerun.id);
    assert.deepEqual(predicate.rerunOf, { runId: failed.id, mode: "rerun", keptSteps: [] });
    // The secret went to the step but into no record.
    assert.doesNotMatch(JSON.stringify(predicate), /another-token/);
    const original_predicate = await predicateOf(failed.id);
    assert.equal(original_predicate.rerunOf, undefined);
  });

  test("a run that succeeded is not resumable, but can be rerun", async () => {
    const refused = await startAgain(alice, resumed.id, "resume", {
      secrets: { token: "s3cret-token" },
    });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.code, "RUN_NOT_RESUMABLE");
    const again = await startAgain(alice, resumed.id, "rerun", {
      secrets: { token: "s3cret-token" },
    });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.deepEqual(again.body.run.rerunOf, { runId: resumed.id, mode: "rerun" });
    await waitForRun(alice, again.body.run.id);
  });
});
