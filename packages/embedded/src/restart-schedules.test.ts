/**
 * The embedded default (embedded PostgreSQL in `home`, the in-process queue): a schedule, a
 * delayed run and the per-user limit survive a restart, and the limits given to startEmbedded
 * apply.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createLogger } from "@packrun/logging";
import { ExecutorService, type Run, RunState } from "@packrun/proto/executor/v1";
import { ScheduleService } from "@packrun/proto/executor/v1/schedules";
import { PlannerService } from "@packrun/proto/planner/v1";
import { serviceTransport } from "@packrun/rpc-server";
import { afterAll, test } from "vitest";
import { type EmbeddedOptions, startEmbedded } from "./start-embedded.ts";

const pack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: embedded-tick, version: 1.0.0}
spec:
  steps:
    - id: a
      run: {uses: builtin:shell, with: {argv: [sleep, "1"]}}
`;

const homes: string[] = [];
afterAll(() => Promise.all(homes.map((home) => rm(home, { recursive: true, force: true }))));
const logger = createLogger({ service: "test", level: process.env.PACKRUN_LOG_LEVEL ?? "silent" });

interface Clients {
  executor: ReturnType<typeof createClient<typeof ExecutorService>>;
  schedules: ReturnType<typeof createClient<typeof ScheduleService>>;
  planner: ReturnType<typeof createClient<typeof PlannerService>>;
}

async function withEmbedded<T>(
  home: string,
  options: Partial<EmbeddedOptions>,
  use: (clients: Clients) => Promise<T>,
): Promise<T> {
  const services = await startEmbedded({ home, logger, ...options });
  // The services authenticate callers by certificate: the test calls as the gateway does.
  const executor = serviceTransport(services.executorUrl, services.tls.services.gateway);
  const planner = serviceTransport(services.plannerUrl, services.tls.services.gateway);
  const executorSessions = executor.sessions;
  const plannerSessions = planner.sessions;
  try {
    return await use({
      executor: createClient(ExecutorService, executor.transport),
      schedules: createClient(ScheduleService, executor.transport),
      planner: createClient(PlannerService, planner.transport),
    });
  } finally {
    executorSessions.abort();
    plannerSessions.abort();
    await services.close();
  }
}

async function scheduledRuns(clients: Clients, scheduleId: string): Promise<Run[]> {
  const { runs } = await clients.executor.listRuns({
    tenant: "default",
    packName: "embedded-tick",
  });
  return runs.filter((run) => run.scheduleId === scheduleId);
}

test("schedules, delayed runs and the per-user limit survive a restart of the embedded default", {
  timeout: 120_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "packrun-restart-schedules-"));
  homes.push(home);
  const options: Partial<EmbeddedOptions> = {
    limits: { userConcurrency: 1 },
    timekeeper: { intervalMs: 100 },
  };
  const notBefore = new Date(Date.now() + 4000);
  const first = await withEmbedded(home, options, async (clients) => {
    await clients.planner.registerPack({ tenant: "default", manifest: pack, publishedBy: "t" });
    const schedule = (
      await clients.schedules.createSchedule({
        tenant: "default",
        name: "every-two-seconds",
        packName: "embedded-tick",
        cron: "*/2 * * * * *",
        createdBy: "scheduler-user",
      })
    ).schedule;
    assert.ok(schedule !== undefined);
    const submit = async (at?: Date) =>
      (
        await clients.executor.submitRun({
          tenant: "default",
          pack: { source: { case: "ref", value: { name: "embedded-tick", version: "" } } },
          submittedBy: "limited-user",
          ...(at === undefined ? {} : { notBefore: timestampFromDate(at) }),
        })
      ).run;
    const running = await submit();
    const waiting = await submit();
    const delayed = await submit(notBefore);
    assert.equal(running?.state, RunState.RUNNING);
    assert.equal(waiting?.state, RunState.QUEUED, "the per-user limit of 1 applies");
    assert.match(waiting?.waitingReason ?? "", /limit 1 per user/);
    assert.equal(delayed?.state, RunState.QUEUED);
    await sleep(2500);
    const before = await scheduledRuns(clients, schedule.id);
    assert.ok(before.length >= 1, "the schedule fired before the restart");
    return { scheduleId: schedule.id, delayedId: delayed?.id ?? "", before: before.length };
  });
  // Started again on the same home: the schedule, the waiting run and the delayed run are there.
  await withEmbedded(home, options, async (clients) => {
    const delayed = (await clients.executor.getRun({ tenant: "default", runId: first.delayedId }))
      .run;
    assert.ok(delayed !== undefined);
    assert.ok(
      delayed.state === RunState.QUEUED || Date.now() >= notBefore.getTime(),
      "still delayed",
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      const runs = await scheduledRuns(clients, first.scheduleId);
      const view = (await clients.executor.getRun({ tenant: "default", runId: first.delayedId }))
        .run;
      if (runs.length > first.before && view?.state === RunState.SUCCEEDED) {
        const times = runs.map((run) => run.scheduledFor?.seconds ?? 0n);
        assert.equal(new Set(times).size, times.length, "one run per due time");
        assert.ok(
          view.startedAt !== undefined &&
            Number(view.startedAt.seconds) * 1000 + view.startedAt.nanos / 1e6 >=
              notBefore.getTime(),
          "the delayed run started no earlier than notBefore",
        );
        break;
      }
      if (Date.now() > deadline)
        assert.fail(`after the restart: ${runs.length} scheduled runs, delayed run ${view?.state}`);
      await sleep(200);
    }
    await clients.schedules.pauseSchedule({ tenant: "default", schedule: first.scheduleId });
  });
});
