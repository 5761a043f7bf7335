/**
 * Schedules, delayed runs and run deadlines through the real gateway (REST, problem+json) over
 * the services on PostgreSQL and Redis, as a client sees them.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RunJson } from "./api-schemas.ts";
import type { ScheduleJson } from "./schedule-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { waitForRun } from "./testing/run-helpers.ts";

const tick = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: nightly-report, version: 1.0.0}
spec:
  inputs: [{name: who, type: string}]
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "hello $1"', sh, "{{ inputs.who }}"]}}
`;

const slow = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: bounded, version: 1.0.0}
spec:
  timeout: 2s
  steps:
    - id: long
      run: {uses: builtin:shell, with: {argv: [sleep, "30"]}}
    - id: never
      run: {uses: builtin:noop}
`;

let stack: GatewayStack;
let alice: RestClient;

beforeAll(async () => {
  stack = await startGatewayStack({ executor: { timekeeper: { intervalMs: 100 } } });
  alice = restClient(stack.url, await stack.mintToken());
  for (const manifest of [tick, slow]) {
    const published = await alice.post("/api/packs", manifest);
    assert.equal(published.status, 201, JSON.stringify(published.body));
  }
});
afterAll(() => stack?.close());

async function remove(path: string, token: string): Promise<Response> {
  return fetch(`${stack.url}${path}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${token}` },
  });
}

describe("schedules over REST", () => {
  test("create, list, show, runs as its creator with its schedule recorded, pause, resume, delete", async () => {
    const created = await alice.post<ScheduleJson>("/api/schedules", {
      name: "report-every-second",
      pack: { name: "nightly-report" },
      inputs: { who: "ops" },
      cron: "* * * * * *",
      timeZone: "America/New_York",
      overlapPolicy: "skip",
      missedPolicy: "runOnce",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const schedule = created.body;
    assert.equal(schedule.pack.version, "latest");
    assert.equal(schedule.createdBy, "alice");
    assert.equal(schedule.timeZone, "America/New_York");
    assert.ok(schedule.nextDueAt !== undefined);
    const listed = await alice.get<{ schedules: ScheduleJson[] }>("/api/schedules");
    assert.ok(listed.body.schedules.some((each) => each.id === schedule.id));
    const shown = await alice.get<ScheduleJson>("/api/schedules/report-every-second");
    assert.equal(shown.body.id, schedule.id);

    const run = await (async () => {
      for (let waited = 0; waited < 15_000; waited += 100) {
        const runs = await alice.get<{ runs: RunJson[] }>("/api/runs?pack=nightly-report");
        const found = runs.body.runs.find((each) => each.schedule?.id === schedule.id);
        if (found !== undefined) return found;
        await sleep(100);
      }
      throw new Error("no scheduled run appeared");
    })();
    assert.equal(run.submittedBy, "alice", "a schedule runs as its creator");
    assert.ok(run.schedule?.dueAt.endsWith(".000Z"));
    const finished = await waitForRun(alice, run.id);
    assert.equal(finished.state, "succeeded");
    assert.deepEqual(finished.schedule, run.schedule);

    // The attestation binds the schedule and due time too.
    let attestation: { status: number; body: { envelope?: { payload: string } } } | undefined;
    for (let waited = 0; waited < 15_000; waited += 200) {
      attestation = await alice.get(`/api/runs/${run.id}/attestation`);
      if (attestation.status === 200) break;
      await sleep(200);
    }
    assert.equal(attestation?.status, 200, JSON.stringify(attestation?.body));
    const statement = JSON.parse(
      Buffer.from(attestation?.body.envelope?.payload ?? "", "base64").toString("utf8"),
    ) as { predicate: { schedule?: { id: string; dueAt: string } } };
    assert.deepEqual(statement.predicate.schedule, run.schedule);

    const paused = await alice.post<ScheduleJson>(`/api/schedules/${schedule.id}/pause`, {});
    assert.equal(paused.status, 200);
    assert.equal(paused.body.paused, true);
    assert.equal(paused.body.nextDueAt, undefined);
    const resumed = await alice.post<ScheduleJson>("/api/schedules/report-every-second/resume", {});
    assert.equal(resumed.body.paused, false);
    assert.ok(resumed.body.nextDueAt !== undefined);
    const deleted = await remove(`/api/schedules/${schedule.id}`, await stack.mintToken());
    assert.equal(deleted.status, 204);
    const gone = await alice.get<{ code: string }>(`/api/schedules/${schedule.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.code, "SCHEDULE_NOT_FOUND");
  }, 60_000);

  test("refusals: bad cron and time zone, duplicate name, other tenants, missing scope", async () => {
    const bad = await alice.post<{ code: string; detail: string }>("/api/schedules", {
      name: "bad",
      pack: { name: "nightly-report" },
      inputs: { who: "x" },
      cron: "every day",
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, "REQUEST_INVALID");
    assert.match(bad.body.detail, /cron "every day" is not a valid cron expression/);
    const zone = await alice.post<{ detail: string }>("/api/schedules", {
      name: "bad",
      pack: { name: "nightly-report" },
      inputs: { who: "x" },
      cron: "0 * * * *",
      timeZone: "Nowhere/City",
    });
    assert.equal(zone.status, 400);
    assert.match(zone.body.detail, /not an IANA time zone/);
    const policy = await alice.post<{ code: string }>("/api/schedules", {
      name: "bad",
      pack: { name: "nightly-report" },
      cron: "0 * * * *",
      overlapPolicy: "sometimes",
    });
    assert.equal(policy.status, 400);

    const body = {
      name: "hourly",
      pack: { name: "nightly-report", version: "1.0.0" },
      inputs: { who: "x" },
      cron: "@hourly",
    };
    assert.equal((await alice.post("/api/schedules", body)).status, 201);
    const again = await alice.post<{ code: string }>("/api/schedules", body);
    assert.equal(again.status, 409);
    assert.equal(again.body.code, "SCHEDULE_EXISTS");

    const globexToken = await stack.mintToken({ tenant: "globex", subject: "eve" });
    const globex = restClient(stack.url, globexToken);
    assert.equal((await globex.get("/api/schedules/hourly")).status, 404);
    assert.equal((await globex.post("/api/schedules/hourly/pause", {})).status, 404);
    assert.equal((await remove("/api/schedules/hourly", globexToken)).status, 404);
    assert.deepEqual(
      (await globex.get<{ schedules: unknown[] }>("/api/schedules")).body.schedules,
      [],
    );
    const reader = restClient(stack.url, await stack.mintToken({ scopes: ["packs.read"] }));
    assert.equal((await reader.get("/api/schedules/hourly")).status, 200);
    assert.equal((await reader.post("/api/schedules", { ...body, name: "other" })).status, 403);
    assert.equal((await reader.post("/api/schedules/hourly/pause", {})).status, 403);
    assert.equal(
      (await remove("/api/schedules/hourly", await stack.mintToken({ scopes: ["packs.read"] })))
        .status,
      403,
    );
  });
});

describe("delayed runs and deadlines over REST", () => {
  test("notBefore: the run waits queued and shows when it starts", async () => {
    const notBefore = new Date(Date.now() + 1500).toISOString();
    const submitted = await alice.post<{ run: RunJson }>("/api/runs", {
      pack: { name: "nightly-report" },
      inputs: { who: "later" },
      notBefore,
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    const run = submitted.body.run;
    assert.equal(run.state, "queued");
    assert.equal(run.notBefore, notBefore);
    assert.match(run.waitingReason ?? "", /delayed: starts at/);
    assert.ok(run.steps.every((step) => step.state === "pending"));
    const done = await waitForRun(alice, run.id);
    assert.equal(done.state, "succeeded");
    assert.ok(done.startedAt !== undefined && done.startedAt >= notBefore);
    const bad = await alice.post<{ code: string }>("/api/runs", {
      pack: { name: "nightly-report" },
      inputs: { who: "x" },
      notBefore: "tomorrow",
    });
    assert.equal(bad.status, 400);
  }, 30_000);

  test("spec.timeout ends the run timed_out; a submission may only shorten it", async () => {
    const longer = await alice.post<{ code: string; detail: string }>("/api/runs", {
      pack: { name: "bounded" },
      timeoutSeconds: 60,
    });
    assert.equal(longer.status, 400);
    assert.match(longer.body.detail, /longer than the pack's spec.timeout of 2s/);
    const submitted = await alice.post<{ run: RunJson }>("/api/runs", {
      pack: { name: "bounded" },
    });
    assert.equal(submitted.status, 201);
    // Terminal at once when the deadline passes; the running step is stopped right after.
    const done = await waitForRun(
      alice,
      submitted.body.run.id,
      (run) => run.state === "timed_out" && !run.steps.some((step) => step.state === "running"),
    );
    assert.equal(done.state, "timed_out");
    assert.equal(done.reason, "run deadline of 2s passed");
    assert.equal(done.timeoutSeconds, 2);
    assert.ok(done.deadlineAt !== undefined);
    const states = Object.fromEntries(done.steps.map((step) => [step.id, step.state]));
    assert.ok(["timed_out", "cancelled"].includes(states.long ?? ""), `long: ${states.long}`);
    assert.equal(states.never, "cancelled");
  }, 30_000);
});
