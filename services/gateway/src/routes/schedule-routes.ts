import type { JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { MissedPolicy, OverlapPolicy, type Schedule } from "@packrun/proto/executor/v1/schedules";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { assertValueDepth, bearerSecurity, withProblems } from "../route-helpers.ts";
import {
  CreateScheduleBodySchema,
  ListSchedulesQuerySchema,
  ListSchedulesResponseSchema,
  type ScheduleJson,
  ScheduleParamsSchema,
  ScheduleSchema,
} from "../schedule-schemas.ts";

const missedNames = { [MissedPolicy.SKIP]: "skip", [MissedPolicy.RUN_ONCE]: "runOnce" } as const;
const overlapNames = {
  [OverlapPolicy.ALLOW]: "allow",
  [OverlapPolicy.SKIP]: "skip",
  [OverlapPolicy.QUEUE]: "queue",
} as const;
const missedValues = { skip: MissedPolicy.SKIP, runOnce: MissedPolicy.RUN_ONCE } as const;
const overlapValues = {
  allow: OverlapPolicy.ALLOW,
  skip: OverlapPolicy.SKIP,
  queue: OverlapPolicy.QUEUE,
} as const;

const time = (value: Timestamp | undefined) =>
  value === undefined ? undefined : timestampDate(value).toISOString();

/** The API shape of a schedule. */
export function scheduleJson(schedule: Schedule | undefined): ScheduleJson {
  if (schedule === undefined) throw new PackrunError("INTERNAL", "executor returned no schedule");
  const json: ScheduleJson = {
    id: schedule.id,
    name: schedule.name,
    pack: { name: schedule.packName, version: schedule.packVersion },
    inputs: (schedule.inputs ?? {}) as Record<string, unknown>,
    cron: schedule.cron,
    timeZone: schedule.timeZone,
    missedPolicy:
      missedNames[schedule.missedPolicy as keyof typeof missedNames] ?? ("skip" as const),
    overlapPolicy:
      overlapNames[schedule.overlapPolicy as keyof typeof overlapNames] ?? ("allow" as const),
    paused: schedule.paused,
    createdBy: schedule.createdBy,
    createdAt: time(schedule.createdAt) ?? new Date(0).toISOString(),
    priority: schedule.priority,
    labels: { ...schedule.labels },
  };
  const nextDueAt = time(schedule.nextDueAt);
  const lastDueAt = time(schedule.lastDueAt);
  if (nextDueAt !== undefined) json.nextDueAt = nextDueAt;
  if (lastDueAt !== undefined) json.lastDueAt = lastDueAt;
  if (schedule.lastRunId !== "") json.lastRunId = schedule.lastRunId;
  if (schedule.lastError !== "") json.lastError = schedule.lastError;
  if (schedule.timeoutSeconds !== 0) json.timeoutSeconds = schedule.timeoutSeconds;
  return json;
}

/**
 * Schedules: create, list, show, pause, resume, delete. Reading needs packs.read; changing
 * needs packs.run, as submitting runs does. A schedule runs as the subject that created it, in
 * its tenant; other tenants never see it.
 */
export function registerScheduleRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  app.post(
    "/api/schedules",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["schedules"],
        operationId: "createSchedule",
        summary: "Create a schedule: a registered pack run with fixed inputs on a cron expression",
        security: bearerSecurity(scopes.run),
        body: CreateScheduleBodySchema,
        response: withProblems({ 201: ScheduleSchema }),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      assertValueDepth(body.inputs, "body/inputs");
      const response = await clients.schedules.createSchedule({
        tenant: principal.tenant,
        name: body.name,
        packName: body.pack.name,
        packVersion: body.pack.version ?? "latest",
        inputs: (body.inputs ?? {}) as JsonObject,
        cron: body.cron,
        timeZone: body.timeZone ?? "UTC",
        missedPolicy: missedValues[body.missedPolicy ?? "skip"],
        overlapPolicy: overlapValues[body.overlapPolicy ?? "allow"],
        createdBy: principal.subject,
        priority: body.priority ?? 0,
        timeoutSeconds: body.timeoutSeconds ?? 0,
        labels: body.labels ?? {},
        paused: body.paused ?? false,
      });
      const schedule = scheduleJson(response.schedule);
      request.log.info({ scheduleId: schedule.id, name: schedule.name }, "schedule created");
      return reply.code(201).header("location", `/api/schedules/${schedule.id}`).send(schedule);
    },
  );

  app.get(
    "/api/schedules",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["schedules"],
        operationId: "listSchedules",
        summary: "List the tenant's schedules by name",
        security: bearerSecurity(scopes.read),
        querystring: ListSchedulesQuerySchema,
        response: withProblems({ 200: ListSchedulesResponseSchema }),
      },
    },
    async (request) => {
      const response = await clients.schedules.listSchedules({
        tenant: principalOf(request).tenant,
        pageSize: request.query.pageSize ?? 50,
        pageToken: request.query.pageToken ?? "",
      });
      return {
        schedules: response.schedules.map(scheduleJson),
        ...(response.nextPageToken === "" ? {} : { nextPageToken: response.nextPageToken }),
      };
    },
  );

  app.get(
    "/api/schedules/:schedule",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["schedules"],
        operationId: "getSchedule",
        summary: "A schedule by id or name, with its next and last due time",
        security: bearerSecurity(scopes.read),
        params: ScheduleParamsSchema,
        response: withProblems({ 200: ScheduleSchema }),
      },
    },
    async (request) =>
      scheduleJson(
        (
          await clients.schedules.getSchedule({
            tenant: principalOf(request).tenant,
            schedule: request.params.schedule,
          })
        ).schedule,
      ),
  );

  for (const action of ["pause", "resume"] as const) {
    app.post(
      `/api/schedules/:schedule/${action}`,
      {
        config: { scope: scopes.run },
        schema: {
          tags: ["schedules"],
          operationId: `${action}Schedule`,
          summary:
            action === "pause"
              ? "Pause a schedule: no runs until resumed"
              : "Resume a schedule from its next due time after now (paused times are not made up)",
          security: bearerSecurity(scopes.run),
          params: ScheduleParamsSchema,
          response: withProblems({ 200: ScheduleSchema }),
        },
      },
      async (request) => {
        const input = {
          tenant: principalOf(request).tenant,
          schedule: request.params.schedule,
        };
        const response =
          action === "pause"
            ? await clients.schedules.pauseSchedule(input)
            : await clients.schedules.resumeSchedule(input);
        request.log.info({ schedule: request.params.schedule }, `schedule ${action}d`);
        return scheduleJson(response.schedule);
      },
    );
  }

  app.delete(
    "/api/schedules/:schedule",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["schedules"],
        operationId: "deleteSchedule",
        summary: "Delete a schedule (its runs stay)",
        security: bearerSecurity(scopes.run),
        params: ScheduleParamsSchema,
        response: withProblems({
          204: { description: "Deleted", type: "null" },
        }),
      },
    },
    async (request, reply) => {
      await clients.schedules.deleteSchedule({
        tenant: principalOf(request).tenant,
        schedule: request.params.schedule,
      });
      request.log.info({ schedule: request.params.schedule }, "schedule deleted");
      return reply.code(204).send();
    },
  );
}
