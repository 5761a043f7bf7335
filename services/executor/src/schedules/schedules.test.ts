/**
 * Issue 17 on real PostgreSQL and Redis: schedules (one run per due time with several executors
 * and across a restart, missed and overlap policies), delayed runs, run deadlines and the
 * per-user limit of runs in flight.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RunState } from "@packrun/proto/executor/v1";
import { MissedPolicy, OverlapPolicy, ScheduleService } from "@packrun/proto/executor/v1/schedules";
import { PlannerService } from "@packrun/proto/planner/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { Executor } from "../rpc/executor-server.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";
import { eventually } from "../testing/processes.ts";

let stack: ExecutorStack;
let schedules: ReturnType<typeof createClient<typeof ScheduleService>>;
let planner: ReturnType<typeof createClient<typeof PlannerService>>;
/** The stack's executor ticks once at start and then only when a test says so. */
const manual = { intervalMs: 3_600_000, missedGraceMs: 500 };

beforeAll(async () => {
  stack = await startExecutorStack({ timekeeper: manual });
  schedules = createClient(ScheduleService, createGrpcTransport({ baseUrl: stack.executor.url }));
  planner = createClient(PlannerService, createGrpcTransport({ baseUrl: stack.plannerUrl }));
});
afterAll(async () => {
  await stack?.close();
});

async function register(name: string, spec: string, tenant = "acme"): Promise<void> {
  await planner.registerPack({ tenant, manifest: packManifest(name, spec), publishedBy: "test" });
}

interface ScheduledRunRow {
  id: string;
  state: string;
  submitted_by: string;
  scheduled_for: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

async function scheduledRuns(scheduleId: string): Promise<ScheduledRunRow[]> {
  return (
    await stack.database.query<ScheduledRunRow>(
      "SELECT id, state, submitted_by, scheduled_for, started_at, finished_at FROM runs WHERE schedule_id = $1 ORDER BY scheduled_for",
      [scheduleId],
    )
  ).rows;
}

const quick = `  steps:
    - id: hello
      run: {uses: builtin:noop}
`;

describe("schedules", () => {
  test("three executors (one in its own process) and a restart: exactly one run per due time, as the schedule's creator", async () => {
    await register("tick", quick);
    const created = await schedules.createSchedule({
      tenant: "acme",
      name: "every-second",
      packName: "tick",
      packVersion: "latest",
      cron: "* * * * * *",
      timeZone: "Europe/Berlin",
      missedPolicy: MissedPolicy.SKIP,
      overlapPolicy: OverlapPolicy.ALLOW,
      createdBy: "alice@example.com",
    });
    const schedule = created.schedule;
    assert.ok(schedule !== undefined);
    assert.equal(schedule.packVersion, "latest");
    assert.ok(schedule.nextDueAt !== undefined, "a next due time");
    const fast = { work: false, timekeeper: { intervalMs: 50, missedGraceMs: 5000 } };
    const first: Executor = await stack.addExecutor(fast);
    const second: Executor = await stack.addExecutor(fast);
    // A third executor in a Node process of its own (its timekeeper ticks every second) races
    // the two for the same due times through the same database.
    const separate = await stack.spawnWorker();
    await sleep(2500);
    // A restart: one executor goes, a new one comes; the schedule lives in PostgreSQL.
    await first.close();
    const third = await stack.addExecutor(fast);
    await sleep(2000);
    await schedules.pauseSchedule({ tenant: "acme", schedule: "every-second" });
    await second.close();
    await third.close();
    separate.child.kill("SIGTERM");
    await separate.exited;
    const runs = await scheduledRuns(schedule.id);
    assert.ok(runs.length >= 3, `at least 3 scheduled runs, got ${runs.length}`);
    // Fired promptly: each run was created soon after its due time (ticks every 50 ms here).
    const lags = (
      await stack.database.query<{ lag_ms: number }>(
        "SELECT (extract(epoch FROM created_at - scheduled_for) * 1000)::float8 AS lag_ms FROM runs WHERE schedule_id = $1",
        [schedule.id],
      )
    ).rows.map((row) => row.lag_ms);
    assert.ok(
      lags.every((lag) => lag >= 0 && lag < 2000),
      `runs created 0-2 s after their due time: ${lags.join(", ")}`,
    );
    const times = runs.map((run) => run.scheduled_for.getTime());
    assert.equal(new Set(times).size, times.length, "one run per due time");
    for (const time of times) assert.equal(time % 1000, 0, "due times are whole seconds");
    for (const run of runs) assert.equal(run.submitted_by, "alice@example.com");
    // No due time between the first and the last went without its run (restart included).
    const first_ = times[0] as number;
    const last = times.at(-1) as number;
    assert.equal(times.length, (last - first_) / 1000 + 1, "no due time was lost or doubled");
    // The run carries its schedule in the RPC view too.
    const view = (await stack.client.getRun({ tenant: "acme", runId: runs[0]?.id ?? "" })).run;
    assert.equal(view?.scheduleId, schedule.id);
    assert.equal(view?.scheduledFor && timestampDate(view.scheduledFor).getTime(), first_);
    const shown = (await schedules.getSchedule({ tenant: "acme", schedule: schedule.id })).schedule;
    assert.equal(shown?.paused, true);
    assert.equal(shown?.nextDueAt, undefined, "a paused schedule has no next due time");
  }, 60_000);

  test("scopes: another tenant sees none of them; names are unique per tenant", async () => {
    await register("tick-b", quick);
    await schedules.createSchedule({
      tenant: "acme",
      name: "hourly",
      packName: "tick-b",
      cron: "0 * * * *",
      createdBy: "alice",
    });
    await assert.rejects(
      schedules.getSchedule({ tenant: "other", schedule: "hourly" }),
      (error: unknown) => ConnectError.from(error).code === Code.NotFound,
    );
    const listed = await schedules.listSchedules({ tenant: "other" });
    assert.equal(listed.schedules.length, 0);
    await assert.rejects(
      schedules.deleteSchedule({ tenant: "other", schedule: "hourly" }),
      (error: unknown) => ConnectError.from(error).code === Code.NotFound,
    );
    await assert.rejects(
      schedules.createSchedule({
        tenant: "acme",
        name: "hourly",
        packName: "tick-b",
        cron: "0 * * * *",
      }),
      (error: unknown) => ConnectError.from(error).code === Code.AlreadyExists,
    );
    await schedules.deleteSchedule({ tenant: "acme", schedule: "hourly" });
    await assert.rejects(
      schedules.getSchedule({ tenant: "acme", schedule: "hourly" }),
      (error: unknown) => ConnectError.from(error).code === Code.NotFound,
    );
  });

  test("bad schedules are refused naming what is wrong", async () => {
    await register("tick-c", `  inputs: [{name: n, type: integer, required: true}]\n${quick}`);
    await register("with-secret", `  secrets: [{name: token}]\n${quick}`);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cron: "61 * * * *" }, /cron "61 \* \* \* \*" is not a valid cron expression/],
      [{ timeZone: "Mars/Olympus" }, /not an IANA time zone/],
      [{ name: "Bad Name" }, /name "Bad Name" must be/],
      [{ name: "0f8a2b4c-1d2e-4f3a-8b9c-0d1e2f3a4b5c" }, /looks like a schedule id/],
      [{ inputs: {} }, /n/],
      [{ packName: "no-such-pack" }, /no-such-pack/],
      [{ packName: "with-secret", inputs: {} }, /declares secrets \(token\)/],
    ];
    for (const [override, message] of cases) {
      await assert.rejects(
        schedules.createSchedule({
          tenant: "acme",
          name: "bad",
          packName: "tick-c",
          cron: "0 * * * *",
          inputs: { n: 1 },
          ...override,
        } as never),
        (error: unknown) => {
          const connect = ConnectError.from(error);
          assert.match(connect.rawMessage, message);
          return connect.code === Code.InvalidArgument || connect.code === Code.NotFound;
        },
      );
    }
  });

  test("missed times while down: skip makes no run, runOnce makes one for the latest", async () => {
    await register("tick-d", quick);
    for (const policy of [MissedPolicy.SKIP, MissedPolicy.RUN_ONCE]) {
      const name = policy === MissedPolicy.SKIP ? "missed-skip" : "missed-once";
      const schedule = (
        await schedules.createSchedule({
          tenant: "acme",
          name,
          packName: "tick-d",
          cron: "* * * * * *",
          missedPolicy: policy,
          createdBy: "bob",
        })
      ).schedule;
      assert.ok(schedule !== undefined);
      // No executor looks for 2.5 s: the due times pass unseen (the grace is 0.5 s here). The
      // look comes late in a second, so even the latest due time is past the grace.
      await sleep(2500);
      while (Date.now() % 1000 < 650 || Date.now() % 1000 > 900) await sleep(20);
      const before = Date.now();
      await stack.executor.timekeeper.tick();
      await schedules.pauseSchedule({ tenant: "acme", schedule: name });
      const runs = await scheduledRuns(schedule.id);
      if (policy === MissedPolicy.SKIP) {
        assert.equal(runs.length, 0, "missed times are skipped");
      } else {
        assert.equal(runs.length, 1, "one run for the missed times");
        const due = runs[0]?.scheduled_for.getTime() ?? 0;
        assert.ok(before - due < 1500, "the run is for the latest missed time");
      }
      const shown = await stack.database.query<{ last_due_at: Date | null }>(
        "SELECT last_due_at FROM schedules WHERE id = $1",
        [schedule.id],
      );
      assert.ok(shown.rows[0]?.last_due_at !== null, "the schedule moved past the missed times");
    }
  });

  test("overlap: skip drops due times while a run is in flight, queue holds them back", async () => {
    const dir = await stepSharedDir("overlap-");
    await register(
      "slow",
      `  inputs: [{name: dir, type: string}]
  steps:
    - id: work
      run: {uses: builtin:shell, with: {script: 'sleep 1.6', env: {D: "{{ inputs.dir }}"}}}
`,
    );
    const results: Record<string, ScheduledRunRow[]> = {};
    const ticking = await stack.addExecutor({
      work: false,
      timekeeper: { intervalMs: 50, missedGraceMs: 5000 },
    });
    for (const [name, policy] of [
      ["overlap-skip", OverlapPolicy.SKIP],
      ["overlap-queue", OverlapPolicy.QUEUE],
    ] as const) {
      const schedule = (
        await schedules.createSchedule({
          tenant: "acme",
          name,
          packName: "slow",
          inputs: { dir },
          cron: "* * * * * *",
          overlapPolicy: policy,
          createdBy: "carol",
        })
      ).schedule;
      assert.ok(schedule !== undefined);
      await sleep(4200);
      await schedules.pauseSchedule({ tenant: "acme", schedule: name });
      results[name] = await scheduledRuns(schedule.id);
    }
    await ticking.close();
    const skipped = results["overlap-skip"] ?? [];
    assert.ok(skipped.length >= 1 && skipped.length <= 3, `skip: ${skipped.length} runs`);
    const times = skipped.map((run) => run.scheduled_for.getTime());
    assert.ok(
      times.some((time, index) => index > 0 && time - (times[index - 1] as number) > 1000),
      "due times were skipped while a run was in flight",
    );
    const queued = results["overlap-queue"] ?? [];
    assert.ok(queued.length >= 4, `queue: every due time has its run (${queued.length})`);
    assert.ok(
      queued.some((run) => run.state === "queued"),
      "later runs wait, queued, behind the one in flight",
    );
    // Started ones never overlap: each starts after the previous one finished.
    const started = queued.filter((run) => run.started_at !== null);
    for (let index = 1; index < started.length; index++) {
      const previous = started[index - 1] as ScheduledRunRow;
      const run = started[index] as ScheduledRunRow;
      assert.ok(previous.finished_at !== null, "the previous run finished first");
      assert.ok(
        (run.started_at as Date).getTime() >= (previous.finished_at as Date).getTime(),
        "no overlap",
      );
    }
    // Cancel what still waits so the stack shuts down quickly.
    for (const run of queued)
      await stack.client.cancelRun({ tenant: "acme", runId: run.id, requestedBy: "test" });
  }, 60_000);
});

describe("delayed runs", () => {
  test("a run with notBefore waits queued, holds no worker, shows its start, then runs", async () => {
    const notBefore = new Date(Date.now() + 1500);
    const response = await stack.client.submitRun({
      tenant: "acme",
      pack: { source: { case: "manifest", value: packManifest("later", quick) } },
      submittedBy: "dave",
      notBefore: timestampFromDate(notBefore),
    });
    const run = response.run;
    assert.equal(run?.state, RunState.QUEUED);
    assert.equal(run?.notBefore && timestampDate(run.notBefore).getTime(), notBefore.getTime());
    assert.match(run?.waitingReason ?? "", /delayed: starts at/);
    const ready = await stack.database.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM steps WHERE run_id = $1 AND ready_at IS NOT NULL",
      [run?.id],
    );
    assert.equal(ready.rows[0]?.n, 0, "no step is claimable before notBefore");
    await stack.executor.timekeeper.tick();
    assert.equal(
      (await stack.client.getRun({ tenant: "acme", runId: run?.id ?? "" })).run?.state,
      RunState.QUEUED,
      "still waiting before its time",
    );
    await eventually("the delayed run to start", async () => {
      await stack.executor.timekeeper.tick();
      const state = (await stack.client.getRun({ tenant: "acme", runId: run?.id ?? "" })).run
        ?.state;
      return state !== RunState.QUEUED;
    });
    const done = await stack.waitFor(run?.id ?? "");
    assert.equal(done.state, RunState.SUCCEEDED, done.reason);
    assert.ok(
      done.startedAt !== undefined && timestampDate(done.startedAt) >= notBefore,
      "started no earlier than notBefore",
    );
    await assert.rejects(
      stack.client.submitRun({
        tenant: "acme",
        pack: { source: { case: "manifest", value: packManifest("later", quick) } },
        idempotencyKey: "schedule:forged",
      }),
      (error: unknown) => ConnectError.from(error).code === Code.InvalidArgument,
    );
  });
});

describe("run deadline", () => {
  const slowPack = (timeout: string) => `  timeout: ${timeout}
  inputs: [{name: dir, type: string}]
  steps:
    - id: long
      run:
        uses: builtin:shell
        with:
          env: {D: "{{ inputs.dir }}"}
          script: 'trap "echo terminated > \\"$D/term\\"; exit 143" TERM; sleep 30 & wait'
    - id: after
      run: {uses: builtin:noop}
`;

  test("spec.timeout: running steps are stopped as on a step timeout, the rest cancelled, the run ends timed_out", async () => {
    const dir = await stepSharedDir("deadline-");
    const id = await stack.submit(packManifest("deadline", slowPack("2s")), { inputs: { dir } });
    const running = await stack.waitFor(id, (run) => run.state === RunState.RUNNING);
    assert.equal(running.timeoutSeconds, 2);
    assert.ok(running.deadlineAt !== undefined, "the view shows the deadline");
    const run = await eventually(
      "the run to time out",
      async () => {
        await stack.executor.timekeeper.tick();
        const view = (await stack.client.getRun({ tenant: "acme", runId: id })).run;
        return view?.state === RunState.TIMED_OUT && !view.steps.some((s) => s.state === 2)
          ? view
          : undefined;
      },
      {
        timeoutMs: 20_000,
        describe: async () =>
          JSON.stringify((await stack.client.getRun({ tenant: "acme", runId: id })).run),
      },
    );
    assert.equal(run.reason, "run deadline of 2s passed");
    const long = run.steps.find((step) => step.id === "long");
    const after = run.steps.find((step) => step.id === "after");
    assert.ok(long !== undefined && after !== undefined);
    assert.ok(
      long.state === 5 /* TIMED_OUT */ || long.state === 6 /* CANCELLED */,
      `the running step was stopped (state ${long.state})`,
    );
    assert.equal(after.state, 6 /* CANCELLED */, "the step not started is cancelled");
    assert.equal(
      (await readFile(join(dir, "term"), "utf8")).trim(),
      "terminated",
      "the step got SIGTERM first (graceful termination)",
    );
    const startedAt = timestampDate(run.startedAt ?? timestampFromDate(new Date()));
    const finishedAt = timestampDate(run.finishedAt ?? timestampFromDate(new Date()));
    assert.ok(finishedAt.getTime() - startedAt.getTime() < 10_000, "ended near its deadline");
  }, 30_000);

  test("a submission may shorten the pack's deadline, never lengthen it", async () => {
    await assert.rejects(
      stack.client.submitRun({
        tenant: "acme",
        pack: { source: { case: "manifest", value: packManifest("deadline", slowPack("2s")) } },
        inputs: { dir: "/tmp" } as never,
        timeoutSeconds: 5,
      }),
      (error: unknown) => {
        const connect = ConnectError.from(error);
        assert.match(connect.rawMessage, /longer than the pack's spec.timeout of 2s/);
        return connect.code === Code.InvalidArgument;
      },
    );
    const dir = await stepSharedDir("deadline-short-");
    const response = await stack.client.submitRun({
      tenant: "acme",
      pack: { source: { case: "manifest", value: packManifest("deadline", slowPack("1h")) } },
      inputs: { dir } as never,
      timeoutSeconds: 1,
    });
    const id = response.run?.id ?? "";
    const run = await eventually(
      "the shortened deadline",
      async () => {
        await stack.executor.timekeeper.tick();
        const view = (await stack.client.getRun({ tenant: "acme", runId: id })).run;
        return view?.state === RunState.TIMED_OUT ? view : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.equal(run.reason, "run deadline of 1s passed");
    await stack.waitFor(id);
  }, 30_000);
});

describe("per-user concurrency", () => {
  test("at most N runs in flight per (tenant, subject); the others wait in order", async () => {
    const limited = await stack.addExecutor({
      work: false,
      admission: { perSubjectRuns: 1 },
      timekeeper: { intervalMs: 50 },
    });
    const dir = await stepSharedDir("per-user-");
    const manifest = packManifest(
      "gate",
      `  inputs: [{name: dir, type: string}, {name: n, type: string}]
  steps:
    - id: wait
      run: {uses: builtin:shell, with: {script: 'echo "$N" >> "$D/order"; while [ ! -e "$D/go" ]; do sleep 0.05; done', env: {D: "{{ inputs.dir }}", N: "{{ inputs.n }}"}}}
`,
    );
    const submit = async (n: number, subject: string) =>
      (
        await limited.runs.submit({
          tenant: "acme",
          pack: { manifest },
          inputs: { dir, n: String(n) },
          secrets: {},
          priority: 0,
          idempotencyKey: "",
          submittedBy: subject,
          labels: {},
        })
      ).view.run;
    const first = await submit(1, "erin");
    const second = await submit(2, "erin");
    const third = await submit(3, "erin");
    const other = await submit(4, "frank");
    assert.equal(first.state, "running");
    assert.equal(second.state, "queued");
    assert.match(second.waiting_reason, /erin has 1 run\(s\) in flight \(limit 1 per user\)/);
    assert.equal(third.state, "queued");
    assert.equal(other.state, "running", "another user is not held back");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(dir, "go"), "");
    for (const run of [first, second, third, other]) {
      const done = await stack.waitFor(run.id, undefined, { timeoutMs: 30_000 });
      assert.equal(done.state, RunState.SUCCEEDED, done.reason);
    }
    const order = (await readFile(join(dir, "order"), "utf8")).trim().split("\n");
    assert.deepEqual(
      order.filter((n) => n !== "4"),
      ["1", "2", "3"],
      "erin's runs started in submission order",
    );
    await limited.close();
  }, 60_000);
});
