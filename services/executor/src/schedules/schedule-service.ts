import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { isTenantName, tenantNameRule } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";
import {
  CreateScheduleResponseSchema,
  DeleteScheduleResponseSchema,
  GetScheduleResponseSchema,
  ListSchedulesResponseSchema,
  MissedPolicy as MissedPolicyEnum,
  OverlapPolicy as OverlapPolicyEnum,
  PauseScheduleResponseSchema,
  ResumeScheduleResponseSchema,
  type Schedule,
  ScheduleSchema,
  type ScheduleService,
} from "@packrun/proto/executor/v1/schedules";
import type { MissedPolicy, OverlapPolicy, ScheduleRow, ScheduleStore } from "./schedule-store.ts";

const missedPolicies: Record<MissedPolicy, MissedPolicyEnum> = {
  skip: MissedPolicyEnum.SKIP,
  runOnce: MissedPolicyEnum.RUN_ONCE,
};
const overlapPolicies: Record<OverlapPolicy, OverlapPolicyEnum> = {
  allow: OverlapPolicyEnum.ALLOW,
  skip: OverlapPolicyEnum.SKIP,
  queue: OverlapPolicyEnum.QUEUE,
};

function requireTenant(tenant: string): string {
  if (!isTenantName(tenant))
    throw new PackrunError("REQUEST_INVALID", `tenant must be ${tenantNameRule}`);
  return tenant;
}

const time = (value: Date | null) => (value === null ? undefined : timestampFromDate(value));

/** A schedule row as its protobuf message. */
export function scheduleMessage(row: ScheduleRow): Schedule {
  return create(ScheduleSchema, {
    id: row.id,
    tenant: row.tenant,
    name: row.name,
    packName: row.pack_name,
    packVersion: row.pack_version,
    inputs: row.inputs as never,
    cron: row.cron,
    timeZone: row.time_zone,
    missedPolicy: missedPolicies[row.missed_policy],
    overlapPolicy: overlapPolicies[row.overlap_policy],
    paused: row.paused,
    createdBy: row.created_by,
    createdAt: time(row.created_at),
    nextDueAt: time(row.next_due_at),
    lastDueAt: time(row.last_due_at),
    lastRunId: row.last_run_id ?? "",
    priority: row.priority,
    timeoutSeconds: row.timeout_seconds,
    labels: row.labels,
    lastError: row.last_error,
  });
}

function policyName<Name extends string>(
  names: Record<Name, number>,
  value: number,
  fallback: Name,
  field: string,
): Name {
  if (value === 0) return fallback;
  const found = (Object.entries(names) as [Name, number][]).find(([, each]) => each === value);
  if (found === undefined) throw new PackrunError("REQUEST_INVALID", `unknown ${field} ${value}`);
  return found[0];
}

/** The ScheduleService RPCs over a {@link ScheduleStore}. */
export function createScheduleService(
  schedules: ScheduleStore,
): ServiceImpl<typeof ScheduleService> {
  return {
    async createSchedule(request) {
      const row = await schedules.create({
        tenant: requireTenant(request.tenant),
        name: request.name,
        packName: request.packName,
        packVersion: request.packVersion,
        inputs: (request.inputs ?? {}) as Record<string, unknown>,
        cron: request.cron,
        timeZone: request.timeZone,
        missedPolicy: policyName(missedPolicies, request.missedPolicy, "skip", "missed_policy"),
        overlapPolicy: policyName(
          overlapPolicies,
          request.overlapPolicy,
          "allow",
          "overlap_policy",
        ),
        createdBy: request.createdBy,
        priority: request.priority,
        timeoutSeconds: request.timeoutSeconds,
        labels: request.labels,
        paused: request.paused,
      });
      return create(CreateScheduleResponseSchema, { schedule: scheduleMessage(row) });
    },
    async getSchedule(request) {
      const row = await schedules.get(requireTenant(request.tenant), request.schedule);
      return create(GetScheduleResponseSchema, { schedule: scheduleMessage(row) });
    },
    async listSchedules(request) {
      const page = await schedules.list({
        tenant: requireTenant(request.tenant),
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return create(ListSchedulesResponseSchema, {
        schedules: page.schedules.map(scheduleMessage),
        nextPageToken: page.nextPageToken,
      });
    },
    async pauseSchedule(request) {
      const row = await schedules.pause(requireTenant(request.tenant), request.schedule);
      return create(PauseScheduleResponseSchema, { schedule: scheduleMessage(row) });
    },
    async resumeSchedule(request) {
      const row = await schedules.resume(requireTenant(request.tenant), request.schedule);
      return create(ResumeScheduleResponseSchema, { schedule: scheduleMessage(row) });
    },
    async deleteSchedule(request) {
      await schedules.delete(requireTenant(request.tenant), request.schedule);
      return create(DeleteScheduleResponseSchema, {});
    },
  };
}
