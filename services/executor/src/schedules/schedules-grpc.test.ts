/**
 * ScheduleService and the issue-17 fields of SubmitRun through a stock gRPC client
 * (@grpc/grpc-js + @grpc/proto-loader reading the .proto sources, no generated code): the
 * contract is plain gRPC, with proper status codes for every refusal.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { loadStockService } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";

type Callback = (error: grpc.ServiceError | null, response: Record<string, unknown>) => void;
type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function client(file: string, service: string[], url: string): AnyClient {
  const Client = loadStockService(file, service);
  return new Client(new URL(url).host, grpc.credentials.createInsecure()) as unknown as AnyClient;
}

function unary(
  target: AnyClient,
  method: string,
  request: object,
): Promise<{ response?: Record<string, unknown>; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    (target[method] as (request: object, callback: Callback) => void).call(
      target,
      request,
      (error, response) => resolve(error ? { error } : { response }),
    );
  });
}

/** `result.response[key]` as a message; fails the test when the call failed. */
function message(
  result: { response?: Record<string, unknown>; error?: grpc.ServiceError },
  key: string,
): Record<string, unknown> {
  assert.equal(result.error, undefined, String(result.error?.message));
  return (result.response?.[key] ?? {}) as Record<string, unknown>;
}

let stack: ExecutorStack;
let schedules: AnyClient;
let executor: AnyClient;
let planner: AnyClient;

beforeAll(async () => {
  stack = await startExecutorStack({ timekeeper: { intervalMs: 3_600_000 } });
  schedules = client(
    "packrun/executor/v1/schedules.proto",
    ["packrun", "executor", "v1", "ScheduleService"],
    stack.executor.url,
  );
  executor = client(
    "packrun/executor/v1/executor.proto",
    ["packrun", "executor", "v1", "ExecutorService"],
    stack.executor.url,
  );
  planner = client(
    "packrun/planner/v1/planner.proto",
    ["packrun", "planner", "v1", "PlannerService"],
    stack.plannerUrl,
  );
});
afterAll(async () => {
  for (const each of [schedules, executor, planner]) each?.close();
  await stack?.close();
});

test("ScheduleService over plain gRPC: every RPC and its status codes", async () => {
  const registered = await unary(planner, "registerPack", {
    tenant: "acme",
    manifest: packManifest("grpc-tick", "  steps:\n    - id: a\n      run: {uses: builtin:noop}\n"),
    publishedBy: "test",
  });
  assert.equal(registered.error, undefined, String(registered.error?.message));
  const created = await unary(schedules, "createSchedule", {
    tenant: "acme",
    name: "grpc-hourly",
    packName: "grpc-tick",
    cron: "0 * * * *",
    timeZone: "Australia/Sydney",
    missedPolicy: "MISSED_POLICY_RUN_ONCE",
    overlapPolicy: "OVERLAP_POLICY_QUEUE",
    createdBy: "grpc-user",
  });
  assert.equal(created.error, undefined, String(created.error?.message));
  const schedule = created.response?.schedule as Record<string, unknown>;
  assert.equal(schedule.packVersion, "latest");
  assert.equal(schedule.missedPolicy, "MISSED_POLICY_RUN_ONCE");
  assert.equal(schedule.overlapPolicy, "OVERLAP_POLICY_QUEUE");
  assert.ok(schedule.nextDueAt !== null, "a next due time");

  const got = await unary(schedules, "getSchedule", { tenant: "acme", schedule: "grpc-hourly" });
  assert.equal(message(got, "schedule").id, schedule.id);
  const listed = await unary(schedules, "listSchedules", { tenant: "acme" });
  assert.ok(
    ((listed.response?.schedules ?? []) as Record<string, unknown>[]).some(
      (s) => s.id === schedule.id,
    ),
  );
  const paused = await unary(schedules, "pauseSchedule", { tenant: "acme", schedule: schedule.id });
  assert.equal(message(paused, "schedule").paused, true);
  const resumed = await unary(schedules, "resumeSchedule", {
    tenant: "acme",
    schedule: "grpc-hourly",
  });
  assert.equal(message(resumed, "schedule").paused, false);

  const refusals: [string, object, grpc.status][] = [
    ["getSchedule", { tenant: "other", schedule: "grpc-hourly" }, grpc.status.NOT_FOUND],
    ["pauseSchedule", { tenant: "other", schedule: "grpc-hourly" }, grpc.status.NOT_FOUND],
    ["getSchedule", { tenant: "Not A Tenant", schedule: "x" }, grpc.status.INVALID_ARGUMENT],
    [
      "createSchedule",
      { tenant: "acme", name: "grpc-hourly", packName: "grpc-tick", cron: "0 * * * *" },
      grpc.status.ALREADY_EXISTS,
    ],
    [
      "createSchedule",
      { tenant: "acme", name: "bad-cron", packName: "grpc-tick", cron: "0 0 31 2 * *x" },
      grpc.status.INVALID_ARGUMENT,
    ],
    [
      "createSchedule",
      { tenant: "acme", name: "no-pack", packName: "missing-pack", cron: "0 * * * *" },
      grpc.status.NOT_FOUND,
    ],
  ];
  for (const [method, request, code] of refusals) {
    const { error } = await unary(schedules, method, request);
    assert.equal(error?.code, code, `${method} ${JSON.stringify(request)}: ${error?.message}`);
  }
  const deleted = await unary(schedules, "deleteSchedule", {
    tenant: "acme",
    schedule: "grpc-hourly",
  });
  assert.equal(deleted.error, undefined);
  const gone = await unary(schedules, "getSchedule", { tenant: "acme", schedule: "grpc-hourly" });
  assert.equal(gone.error?.code, grpc.status.NOT_FOUND);
});

test("SubmitRun over plain gRPC: not_before keeps the run queued; a longer timeout is refused", async () => {
  const manifest = packManifest(
    "grpc-deadline",
    "  timeout: 1h\n  steps:\n    - id: a\n      run: {uses: builtin:noop}\n",
  );
  const later = Math.floor(Date.now() / 1000) + 3600;
  const submitted = await unary(executor, "submitRun", {
    tenant: "acme",
    pack: { manifest },
    notBefore: { seconds: String(later), nanos: 0 },
    timeoutSeconds: 60,
    // A caller cannot make a run look scheduled: these are the scheduler's own.
    scheduleId: "0f8a2b4c-1d2e-4f3a-8b9c-0d1e2f3a4b5c",
    scheduledFor: { seconds: String(later), nanos: 0 },
  });
  assert.equal(submitted.error, undefined, String(submitted.error?.message));
  const run = submitted.response?.run as Record<string, unknown>;
  assert.equal(run.state, "RUN_STATE_QUEUED");
  assert.equal((run.notBefore as { seconds: string }).seconds, String(later));
  assert.equal(run.timeoutSeconds, 60);
  assert.equal(run.scheduleId, "", "a caller's schedule_id is ignored");
  assert.equal(run.scheduledFor, null);
  assert.match(String(run.waitingReason), /delayed: starts at/);
  const cancelled = await unary(executor, "cancelRun", {
    tenant: "acme",
    runId: run.id,
    requestedBy: "test",
  });
  assert.equal(
    message(cancelled, "run").state,
    "RUN_STATE_CANCELLED",
    "a waiting run can be cancelled",
  );
  const longer = await unary(executor, "submitRun", {
    tenant: "acme",
    pack: { manifest },
    timeoutSeconds: 7200,
  });
  assert.equal(longer.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(longer.error?.details ?? "", /longer than the pack's spec.timeout of 3600s/);
});
