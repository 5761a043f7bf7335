import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { DeadLetterJson, DeadLetterRetryJson, RunEventJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";

/** `prepare` counts its runs; `flaky` fails twice (its two attempts) until `<dir>/fixed` exists. */
const flakyPack = (name: string, secrets: string) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: ${name}, version: 1.0.0}
spec:
  inputs: [{name: dir, type: string, required: true}]
${secrets}
  steps:
    - id: prepare
      run:
        uses: builtin:shell
        with:
          env: {DIR: "{{ inputs.dir }}"}
          script: 'echo x >> "$DIR/prepare.count"'
    - id: flaky
      retries: {maxAttempts: 2}
      run:
        uses: builtin:shell
        with:
          env: {DIR: "{{ inputs.dir }}"}
          script: 'test -f "$DIR/fixed" || { echo "boom" >&2; exit 5; }'
`;

async function lines(file: string): Promise<number> {
  return (await readFile(file, "utf8")).split("\n").filter(Boolean).length;
}

async function failedRun(client: RestClient, name: string, secrets = "", body = {}) {
  const dir = await stepSharedDir("dead-letter-");
  const submitted = await submitRun(client, {
    manifest: flakyPack(name, secrets),
    inputs: { dir },
    ...body,
  });
  const run = await waitForRun(client, submitted.id);
  assert.equal(run.state, "failed");
  return { run, dir };
}

/** The queue's own dead-letter count, as /metrics reports it. */
async function queuedDeadLetters(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = /^packrun_queue_jobs\{status="dead-letter"\} (\d+)$/m.exec(text);
  assert.ok(match, "no dead-letter count in /metrics");
  return Number(match[1]);
}

async function openDeadLetters(client: RestClient, query = ""): Promise<DeadLetterJson[]> {
  const response = await client.get<{ deadLetters: DeadLetterJson[] }>(`/api/dead-letters${query}`);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.deadLetters;
}

// The embedded default's in-process queue and BullMQ on Redis, both on the test PostgreSQL.
describe.each(["memory", "redis"] as const)("dead letters with the %s queue", (queue) => {
  let stack: GatewayStack;
  let alice: RestClient;

  beforeAll(async () => {
    stack = await startGatewayStack({ queue });
    alice = restClient(stack.url, await stack.mintToken());
  });
  afterAll(() => stack.close());

  test("listed with the last attempt's result, re-driven once into a resume of the run", async () => {
    const { run, dir } = await failedRun(alice, `dl-one-${queue}`);
    const [letter, ...others] = await openDeadLetters(alice);
    assert.deepEqual(others, []);
    assert.ok(letter);
    assert.equal(letter.runId, run.id);
    assert.equal(letter.stepId, "flaky");
    assert.equal(letter.attempt, 2);
    assert.match(letter.reason, /exited with code 5/);
    assert.equal(letter.runState, "failed");
    assert.deepEqual(letter.pack, { name: `dl-one-${queue}`, version: "1.0.0" });
    assert.equal(letter.lastAttempt?.attempt, 2);
    assert.equal(letter.lastAttempt?.exitCode, 5);
    assert.match(letter.lastAttempt?.reason ?? "", /exited with code 5/);
    assert.ok(letter.lastAttempt?.finishedAt);
    assert.equal(letter.retriedAt, undefined);

    // Another tenant sees nothing and can re-drive nothing.
    const globex = restClient(stack.url, await stack.mintToken({ tenant: "globex" }));
    assert.deepEqual(await openDeadLetters(globex), []);
    const foreign = await globex.post<{ code: string }>(`/api/dead-letters/${letter.id}/retry`, {});
    assert.equal(foreign.status, 404, JSON.stringify(foreign.body));
    assert.equal(foreign.body.code, "DEAD_LETTER_NOT_FOUND");
    const reader = restClient(stack.url, await stack.mintToken({ scopes: ["packs.read"] }));
    assert.equal((await reader.post(`/api/dead-letters/${letter.id}/retry`, {})).status, 403);
    assert.equal((await reader.post("/api/dead-letters/retry", {})).status, 403);
    const all = await globex.post<{ retried: unknown[]; refused: unknown[] }>(
      "/api/dead-letters/retry",
      {},
    );
    assert.deepEqual(all.body, { retried: [], refused: [] });

    assert.equal(await queuedDeadLetters(stack.url), 1);
    await writeFile(join(dir, "fixed"), "");
    const retried = await alice.post<DeadLetterRetryJson>(
      `/api/dead-letters/${letter.id}/retry`,
      {},
    );
    assert.equal(retried.status, 201, JSON.stringify(retried.body));
    assert.equal(retried.body.runId, run.id);
    const redriven = await waitForRun(alice, retried.body.retryRunId);
    assert.equal(redriven.state, "succeeded", redriven.reason ?? "");
    assert.deepEqual(redriven.rerunOf, { runId: run.id, mode: "resume" });
    assert.equal(redriven.planHash, run.planHash);
    assert.equal(await lines(join(dir, "prepare.count")), 1, "prepare was kept, not rerun");

    assert.deepEqual(await openDeadLetters(alice), []);
    assert.equal(await queuedDeadLetters(stack.url), 0, "the queue's copy was dropped");
    const [closed] = await openDeadLetters(alice, "?includeRetried=true");
    assert.equal(closed?.retryRunId, redriven.id);
    assert.equal(closed?.retriedBy, "alice");
    assert.ok(closed?.retriedAt);

    const again = await alice.post<{ code: string; detail: string }>(
      `/api/dead-letters/${letter.id}/retry`,
      {},
    );
    assert.equal(again.status, 409);
    assert.equal(again.body.code, "DEAD_LETTER_RETRIED");
    assert.match(again.body.detail, new RegExp(`re-driven by run ${redriven.id}`));

    // The re-drive is in the new run's evidence: its attestation and (complete once the run is
    // attested) its event log.
    const deadline = Date.now() + 20_000;
    let attestation = await alice.get<{ envelope: { payload: string } }>(
      `/api/runs/${redriven.id}/attestation`,
    );
    while (attestation.status !== 200 && Date.now() < deadline) {
      await sleep(100);
      attestation = await alice.get(`/api/runs/${redriven.id}/attestation`);
    }
    assert.equal(attestation.status, 200);
    const predicate = JSON.parse(
      Buffer.from(attestation.body.envelope.payload, "base64").toString("utf8"),
    ).predicate as { rerunOf: unknown };
    assert.deepEqual(predicate.rerunOf, {
      runId: run.id,
      mode: "resume",
      keptSteps: ["prepare"],
      deadLetters: [{ id: letter.id, stepId: "flaky", attempt: 2 }],
    });
    const events = (await alice.sse(`/api/runs/${redriven.id}/logs?follow=false`))
      .filter((message) => message.event === "run-event")
      .map((message) => JSON.parse(message.data) as RunEventJson);
    const event = events.find((each) => each.type === "run.rerun");
    assert.ok(event, JSON.stringify(events.map((each) => each.type)));
    assert.deepEqual(event?.metadata?.deadLetters, [
      { id: letter.id, stepId: "flaky", attempt: 2 },
    ]);
    assert.match(event?.message ?? "", /re-drive of dead-lettered step\(s\) flaky/);
  });

  test("retry-all re-drives what it can and lists what it refused", async () => {
    const plain = await failedRun(alice, `dl-plain-${queue}`);
    const secret = await failedRun(alice, `dl-secret-${queue}`, "  secrets: [{name: token}]", {
      secrets: { token: "t" },
    });
    const open = await openDeadLetters(alice);
    const byRun = new Map(open.map((letter) => [letter.runId, letter.id]));
    assert.ok(byRun.has(plain.run.id) && byRun.has(secret.run.id));
    await writeFile(join(plain.dir, "fixed"), "");
    const response = await alice.post<{
      retried: DeadLetterRetryJson[];
      refused: { deadLetterId: string; code: string; message: string }[];
    }>("/api/dead-letters/retry", {});
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(
      response.body.retried.map((each) => [each.deadLetterId, each.runId]),
      [[byRun.get(plain.run.id), plain.run.id]],
    );
    assert.deepEqual(
      response.body.refused.map((each) => [each.deadLetterId, each.code]),
      [[byRun.get(secret.run.id), "SECRET_MISSING"]],
    );
    const retryRun = response.body.retried[0]?.retryRunId ?? "";
    assert.equal((await waitForRun(alice, retryRun)).state, "succeeded");
    assert.deepEqual(
      (await openDeadLetters(alice)).map((letter) => letter.runId),
      [secret.run.id],
    );
  });
});
