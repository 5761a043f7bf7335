import assert from "node:assert/strict";
import type { Static } from "typebox";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { ListRunsResponseSchema, RunEventJson, RunJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";
import { gatedPack, partialFailurePack } from "./testing/sample-packs.ts";

const threeJobs = (version: string, greeting: string) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: three-jobs, version: ${version}, description: three sequential jobs}
spec:
  inputs: [{name: who, type: string, default: world}]
  steps:
    - id: fetch
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "fetching for $1"; sleep 0.3; echo fetched', sh, "{{ inputs.who }}"]}}
    - id: build
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'for i in 1 2 3; do echo "build line $i"; done']}}
    - id: report
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "${greeting} $1"', sh, "{{ inputs.who }}"]}}
`;

const failing = partialFailurePack("partial-failure");

const gated = gatedPack("gated-deploy");

let stack: GatewayStack;
let alice: RestClient;

beforeAll(async () => {
  stack = await startGatewayStack();
  alice = restClient(stack.url, await stack.mintToken({ groups: ["release-managers"] }));
});
afterAll(() => stack.close());

describe("through the gateway", () => {
  test("a 3-job pack published as 1.0.0 runs by reference, its log streams live to the end", async () => {
    const published = await alice.post<{
      pack: { version: string; digest: string };
      created: boolean;
    }>("/api/packs", threeJobs("1.0.0", "hello"));
    assert.equal(published.status, 201, JSON.stringify(published.body));
    assert.equal(published.body.pack.version, "1.0.0");

    const run = await submitRun(alice, {
      pack: { name: "three-jobs", version: "1.0.0" },
      inputs: { who: "ops" },
    });
    assert.equal(run.pack.version, "1.0.0");
    assert.ok(["queued", "running"].includes(run.state));
    // Subscribed right after submission: everything arrives live, in order, then `end`.
    const messages = await alice.sse(`/api/runs/${run.id}/logs`);
    const end = messages.at(-1);
    assert.equal(end?.event, "end");
    assert.deepEqual(JSON.parse(end?.data ?? "{}"), { state: "succeeded" });
    const events = messages.slice(0, -1).map((m) => JSON.parse(m.data) as RunEventJson);
    assert.deepEqual(
      events.map((e) => e.sequence),
      events.map((_, i) => i + 1),
      "sequences are gapless from 1",
    );
    assert.deepEqual(
      messages.slice(0, -1).map((m) => m.id),
      events.map((e) => String(e.sequence)),
    );
    const lines = events
      .filter((e) => e.type.startsWith("log."))
      .map((e) => `${e.stepId}: ${e.message}`);
    assert.deepEqual(lines, [
      "fetch: fetching for ops",
      "fetch: fetched",
      "build: build line 1",
      "build: build line 2",
      "build: build line 3",
      "report: hello ops",
    ]);
    const finished = await waitForRun(alice, run.id);
    assert.equal(finished.state, "succeeded");
    assert.deepEqual(
      finished.steps.map((s) => [s.id, s.state, s.attempts.length]),
      [
        ["fetch", "succeeded", 1],
        ["build", "succeeded", 1],
        ["report", "succeeded", 1],
      ],
    );
  });

  test("publishing 2.0.0 keeps 1.0.0 exactly as published", async () => {
    const before = await alice.get<{ manifest: string; pack: { digest: string } }>(
      "/api/packs/three-jobs/versions/1.0.0",
    );
    assert.equal(before.status, 200);
    const v2 = await alice.post<{ created: boolean }>("/api/packs", {
      manifest: threeJobs("2.0.0", "howdy"),
    });
    assert.equal(v2.status, 201);
    const conflict = await alice.post<{ code: string }>(
      "/api/packs",
      threeJobs("1.0.0", "changed"),
    );
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.code, "PACK_VERSION_CONFLICT");
    const again = await alice.get<{ manifest: string; pack: { digest: string } }>(
      "/api/packs/three-jobs/versions/1.0.0",
    );
    assert.deepEqual(again.body, before.body);
    const versions = await alice.get<{ versions: { version: string }[] }>(
      "/api/packs/three-jobs/versions",
    );
    assert.deepEqual(
      versions.body.versions.map((v) => v.version),
      ["2.0.0", "1.0.0"],
    );
    const latest = await submitRun(alice, { pack: { name: "three-jobs" } });
    assert.equal(latest.pack.version, "2.0.0");
    await waitForRun(alice, latest.id);
    const packs = await alice.get<{
      packs: { name: string; latestVersion: string; versionCount: number }[];
    }>("/api/packs");
    assert.deepEqual(packs.body.packs, [
      { name: "three-jobs", latestVersion: "2.0.0", versionCount: 2 },
    ]);
  });

  test("a finished run's log replays in chronological order as NDJSON, and resumes after a sequence", async () => {
    const run = await submitRun(alice, { manifest: threeJobs("1.0.0", "hi") });
    await waitForRun(alice, run.id);
    const response = await fetch(`${stack.url}/api/runs/${run.id}/logs?format=ndjson`, {
      headers: { authorization: `Bearer ${await stack.mintToken()}` },
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /application\/x-ndjson/);
    const lines = (await response.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.deepEqual(lines.at(-1), { end: true, state: "succeeded" });
    const events = lines.slice(0, -1) as RunEventJson[];
    for (let i = 1; i < events.length; i++) {
      assert.equal(events[i]?.sequence, (events[i - 1]?.sequence ?? 0) + 1);
      assert.ok((events[i]?.time ?? "") >= (events[i - 1]?.time ?? ""), "times never go back");
    }
    assert.equal(events[0]?.type, "run.queued");
    // Resuming with Last-Event-ID gives exactly the rest.
    const resumed = await alice.sse(`/api/runs/${run.id}/logs`, { lastEventId: "3" });
    assert.deepEqual(
      resumed.filter((m) => m.event === "run-event").map((m) => Number(m.id)),
      events.slice(3).map((e) => e.sequence),
    );
  });

  test("a failing job gives a visible partial failure", async () => {
    const run = await submitRun(alice, { manifest: failing });
    const finished = await waitForRun(alice, run.id);
    assert.equal(finished.state, "failed");
    assert.match(finished.reason ?? "", /broken/);
    assert.deepEqual(
      finished.steps.map((s) => [s.id, s.state]),
      [
        ["ok", "succeeded"],
        ["broken", "failed"],
        ["never", "skipped"],
      ],
    );
    assert.equal(finished.steps[1]?.exitCode, 3);
    const failedRuns =
      await alice.get<Static<typeof ListRunsResponseSchema>>("/api/runs?state=failed");
    assert.ok(failedRuns.body.runs.some((r) => r.id === run.id));
    assert.ok(failedRuns.body.runs.every((r) => r.state === "failed"));
  });

  test("runs submitted concurrently finish independently", async () => {
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        submitRun(alice, {
          manifest: i % 4 === 3 ? failing : threeJobs("1.0.0", `run${i}`),
          inputs: i % 4 === 3 ? {} : { who: `n${i}` },
          labels: { batch: "concurrent" },
        }),
      ),
    );
    const finished = await Promise.all(runs.map((run) => waitForRun(alice, run.id)));
    assert.deepEqual(
      finished.map((run) => run.state),
      runs.map((_, i) => (i % 4 === 3 ? "failed" : "succeeded")),
    );
    for (const [i, run] of finished.entries()) {
      if (i % 4 === 3) continue;
      const messages = await alice.sse(`/api/runs/${run.id}/logs?step=report`);
      const report = messages
        .filter((m) => m.event === "run-event")
        .map((m) => JSON.parse(m.data) as RunEventJson)
        .filter((e) => e.type.startsWith("log."));
      assert.deepEqual(
        report.map((e) => e.message),
        [`run${i} n${i}`],
      );
    }
  });

  test("an approval round trip with a bound token; forged, stale and misbound tokens are refused and recorded", async () => {
    const run = await submitRun(alice, { manifest: gated });
    const waiting = await waitForRun(alice, run.id, (r) => r.state === "awaiting-approval");
    assert.deepEqual(waiting.pendingGates, ["release"]);
    const gate = waiting.gates.find((g) => g.gateId === "release");
    assert.deepEqual(gate?.grants, ["release-managers"]);
    const binding = { runId: run.id, gateId: "release", planHash: waiting.planHash };

    // No binding at all.
    const unbound = await alice.post<{ code: string }>(`/api/runs/${run.id}/approve`, {});
    assert.equal(unbound.status, 403);
    assert.equal(unbound.body.code, "APPROVAL_TOKEN_MISMATCH");
    // Stale: the plan hash the approver saw is not the run's.
    const stale = restClient(
      stack.url,
      await stack.mintToken({
        groups: ["release-managers"],
        approval: { ...binding, planHash: `sha256:${"0".repeat(64)}` },
      }),
    );
    const staleAnswer = await stale.post<{ code: string }>(`/api/runs/${run.id}/approve`, {});
    assert.equal(staleAnswer.status, 403);
    assert.equal(staleAnswer.body.code, "APPROVAL_STALE");
    // Bound to another run.
    const other = restClient(
      stack.url,
      await stack.mintToken({
        groups: ["release-managers"],
        approval: { ...binding, runId: "00000000-0000-4000-8000-000000000000" },
      }),
    );
    assert.equal((await other.post(`/api/runs/${run.id}/approve`, {})).status, 403);
    // Right binding, but not in the gate's grants.
    const outsider = restClient(
      stack.url,
      await stack.mintToken({ subject: "mallory", groups: ["interns"], approval: binding }),
    );
    const denied = await outsider.post<{ code: string }>(`/api/runs/${run.id}/approve`, {});
    assert.equal(denied.status, 403);
    assert.equal(denied.body.code, "PERMISSION_DENIED");
    // Forged: signed by a key the gateway does not trust.
    const forgedToken = await stack.mintToken({ approval: binding });
    const [header, payload] = forgedToken.split(".");
    const forged = restClient(stack.url, `${header}.${payload}.${"A".repeat(86)}`);
    const forgedAnswer = await forged.post<{ code: string }>(`/api/runs/${run.id}/approve`, {});
    assert.equal(forgedAnswer.status, 401);
    // None of that moved the run.
    assert.equal((await alice.get<RunJson>(`/api/runs/${run.id}`)).body.state, "awaiting-approval");

    const approver = restClient(
      stack.url,
      await stack.mintToken({
        subject: "rm-carol",
        groups: ["release-managers"],
        approval: binding,
      }),
    );
    const approved = await approver.post<{
      recorded: boolean;
      runState: string;
      gate: { state: string };
    }>(`/api/runs/${run.id}/approve`, { comment: "looks good" });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.recorded, true);
    const finished = await waitForRun(alice, run.id);
    assert.equal(finished.state, "succeeded");
    assert.deepEqual(
      finished.gates[0]?.decisions.map((d) => [d.approver, d.approved, d.comment]),
      [["rm-carol", true, "looks good"]],
    );
    // Replaying the token is refused (approval tokens are single-use); nothing changes.
    const replay = await approver.post<{ code: string }>(`/api/runs/${run.id}/approve`, {});
    assert.equal(replay.status, 409, JSON.stringify(replay.body));
    assert.equal(replay.body.code, "APPROVAL_TOKEN_REUSED");

    const messages = await alice.sse(`/api/runs/${run.id}/logs`);
    const refused = messages
      .filter((m) => m.event === "run-event")
      .map((m) => JSON.parse(m.data) as RunEventJson)
      .filter((e) => e.type === "gate.approval_refused");
    assert.deepEqual(
      refused.map((e) => e.metadata?.code),
      ["APPROVAL_TOKEN_MISMATCH", "APPROVAL_STALE", "APPROVAL_TOKEN_MISMATCH", "PERMISSION_DENIED"],
    );
  });

  test("a tenant never sees another tenant's packs, runs, logs, artifacts or approvals", async () => {
    const run = await submitRun(alice, { manifest: gated });
    await waitForRun(alice, run.id, (r) => r.state === "awaiting-approval");
    const globex = restClient(
      stack.url,
      await stack.mintToken({
        tenant: "globex",
        subject: "eve",
        groups: ["release-managers"],
        approval: { runId: run.id, gateId: "release", planHash: run.planHash },
      }),
    );
    for (const path of [
      `/api/runs/${run.id}`,
      `/api/runs/${run.id}/logs?follow=false`,
      `/api/runs/${run.id}/artifacts`,
      `/api/runs/${run.id}/attestation`,
      `/api/runs/${run.id}/bundle`,
      `/api/runs/${run.id}/artifacts/sha256:${"a".repeat(64)}`,
      "/api/packs/three-jobs/versions",
      "/api/packs/three-jobs/versions/1.0.0",
    ]) {
      const response = await globex.get<{ code: string }>(path);
      assert.equal(response.status, 404, `${path}: ${JSON.stringify(response.body)}`);
    }
    for (const path of [`/api/runs/${run.id}/approve`, `/api/runs/${run.id}/cancel`]) {
      const response = await globex.post<{ code: string }>(path, {});
      assert.equal(response.status, 404, path);
      assert.equal(response.body.code, "RUN_NOT_FOUND");
    }
    assert.deepEqual((await globex.get<{ packs: unknown[] }>("/api/packs")).body.packs, []);
    assert.ok(
      !(await globex.get<{ runs: RunJson[] }>("/api/runs")).body.runs.some((r) => r.id === run.id),
    );
    assert.equal((await globex.post("/api/runs", { pack: { name: "three-jobs" } })).status, 404);
    // Still waiting for alice's tenant, untouched.
    assert.equal((await alice.get<RunJson>(`/api/runs/${run.id}`)).body.state, "awaiting-approval");
    const cancelled = await alice.post<RunJson>(`/api/runs/${run.id}/cancel`, {
      reason: "test over",
    });
    assert.equal(cancelled.status, 200);
  });
});
