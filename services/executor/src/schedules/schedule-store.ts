import { randomUUID } from "node:crypto";
import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { effectiveTimeout, type PlanFetcher } from "../rpc/run-service.ts";
import { nextDueTime, requireValidCron } from "./schedule-times.ts";

/** Missed due times (while no executor ran): dropped, or one run for the latest of them. */
export type MissedPolicy = "skip" | "runOnce";
/** A due time while the schedule's previous run is in flight: run beside it, skip, or wait. */
export type OverlapPolicy = "allow" | "skip" | "queue";

/** A row of `schedules`. */
export interface ScheduleRow {
  id: string;
  tenant: string;
  name: string;
  pack_name: string;
  /** A version, or "latest". */
  pack_version: string;
  inputs: Record<string, unknown>;
  cron: string;
  time_zone: string;
  missed_policy: MissedPolicy;
  overlap_policy: OverlapPolicy;
  paused: boolean;
  created_by: string;
  priority: number;
  timeout_seconds: number;
  labels: Record<string, string>;
  created_at: Date;
  next_due_at: Date | null;
  last_due_at: Date | null;
  last_run_id: string | null;
  last_error: string;
}

/** What a schedule is created with. */
export interface NewSchedule {
  tenant: string;
  name: string;
  packName: string;
  /** A version, or "" / "latest". */
  packVersion: string;
  inputs: Record<string, unknown>;
  cron: string;
  /** IANA zone; "" = UTC. */
  timeZone: string;
  missedPolicy: MissedPolicy;
  overlapPolicy: OverlapPolicy;
  createdBy: string;
  priority: number;
  timeoutSeconds: number;
  labels: Record<string, string>;
  paused: boolean;
}

const scheduleName = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Schedules of one executor database: create, read, pause, resume, delete. */
export interface ScheduleStore {
  create(schedule: NewSchedule): Promise<ScheduleRow>;
  /** By id or name. @throws PackrunError SCHEDULE_NOT_FOUND */
  get(tenant: string, schedule: string): Promise<ScheduleRow>;
  list(query: {
    tenant: string;
    pageSize: number;
    pageToken: string;
  }): Promise<{ schedules: ScheduleRow[]; nextPageToken: string }>;
  pause(tenant: string, schedule: string): Promise<ScheduleRow>;
  /** Resumes from the next due time after now: times passed while paused are not made up. */
  resume(tenant: string, schedule: string): Promise<ScheduleRow>;
  delete(tenant: string, schedule: string): Promise<void>;
}

/** Creates the schedule store; `plan` checks a new schedule's pack and inputs. */
export function createScheduleStore(database: Database, plan: PlanFetcher): ScheduleStore {
  const find = async (tenant: string, schedule: string, suffix = ""): Promise<ScheduleRow> => {
    const byId = uuid.test(schedule);
    const row = (
      await database.query<ScheduleRow>(
        `SELECT * FROM schedules WHERE tenant = $1 AND ${byId ? "id = $2::uuid" : "name = $2"}${suffix}`,
        [tenant, schedule],
      )
    ).rows[0];
    if (row === undefined)
      throw new PackrunError("SCHEDULE_NOT_FOUND", `schedule ${schedule} not found`);
    return row;
  };
  const dbNow = async (): Promise<Date> =>
    (await database.query<{ now: Date }>("SELECT now() AS now")).rows[0]?.now ?? new Date();

  return {
    async create(schedule) {
      if (!scheduleName.test(schedule.name))
        throw new PackrunError(
          "REQUEST_INVALID",
          `name "${schedule.name}" must be 1-63 lower-case letters, digits, . _ or -, starting with a letter or digit`,
        );
      if (uuid.test(schedule.name))
        throw new PackrunError(
          "REQUEST_INVALID",
          `name "${schedule.name}" looks like a schedule id; choose a name that does not`,
        );
      if (schedule.packName === "")
        throw new PackrunError("REQUEST_INVALID", "pack (the registered pack's name) is required");
      const timeZone = schedule.timeZone === "" ? "UTC" : schedule.timeZone;
      requireValidCron(schedule.cron, timeZone);
      const version = schedule.packVersion === "" ? "latest" : schedule.packVersion;
      // Planned once now, so a schedule that could never run is refused at once.
      const planned = await plan({
        tenant: schedule.tenant,
        pack: { ref: { name: schedule.packName, version: version === "latest" ? "" : version } },
        inputs: schedule.inputs,
        secretNames: [],
      });
      const parsed = JSON.parse(planned.planJson) as {
        secrets?: string[];
        timeoutSeconds?: number;
      };
      if ((parsed.secrets ?? []).length > 0)
        throw new PackrunError(
          "REQUEST_INVALID",
          `pack ${planned.packName} declares secrets (${(parsed.secrets ?? []).join(", ")}); a schedule stores no secret values, so it cannot run such a pack`,
        );
      const timeoutSeconds = effectiveTimeout(schedule.timeoutSeconds, parsed.timeoutSeconds);
      const next = schedule.paused ? null : nextDueTime(schedule.cron, timeZone, await dbNow());
      try {
        return (
          await database.query<ScheduleRow>(
            `INSERT INTO schedules (id, tenant, name, pack_name, pack_version, inputs, cron, time_zone, missed_policy, overlap_policy, paused, created_by, priority, timeout_seconds, labels, next_due_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING *`,
            [
              randomUUID(),
              schedule.tenant,
              schedule.name,
              schedule.packName,
              version,
              JSON.stringify(schedule.inputs),
              schedule.cron,
              timeZone,
              schedule.missedPolicy,
              schedule.overlapPolicy,
              schedule.paused,
              schedule.createdBy,
              schedule.priority,
              // The pack's own deadline applies anyway: only a shorter one is stored.
              schedule.timeoutSeconds === 0 ? 0 : timeoutSeconds,
              JSON.stringify(schedule.labels),
              next,
            ],
          )
        ).rows[0] as ScheduleRow;
      } catch (error) {
        if ((error as { code?: string }).code === "23505")
          throw new PackrunError(
            "SCHEDULE_EXISTS",
            `schedule ${schedule.name} already exists in tenant ${schedule.tenant}`,
          );
        throw error;
      }
    },

    get: (tenant, schedule) => find(tenant, schedule),

    async list(query) {
      const size = Math.min(Math.max(query.pageSize || 50, 1), 500);
      let after = "";
      if (query.pageToken !== "") {
        after = Buffer.from(query.pageToken, "base64url").toString("utf8");
        if (!scheduleName.test(after))
          throw new PackrunError(
            "REQUEST_INVALID",
            "pageToken (page_token) is not a token this service issued",
          );
      }
      const rows = (
        await database.query<ScheduleRow>(
          "SELECT * FROM schedules WHERE tenant = $1 AND name > $2 ORDER BY name LIMIT $3",
          [query.tenant, after, size + 1],
        )
      ).rows;
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return {
        schedules: page,
        nextPageToken:
          rows.length > size && last !== undefined
            ? Buffer.from(last.name).toString("base64url")
            : "",
      };
    },

    async pause(tenant, schedule) {
      const row = await find(tenant, schedule);
      return (
        await database.query<ScheduleRow>(
          "UPDATE schedules SET paused = true, next_due_at = NULL WHERE id = $1 RETURNING *",
          [row.id],
        )
      ).rows[0] as ScheduleRow;
    },

    async resume(tenant, schedule) {
      const row = await find(tenant, schedule);
      if (!row.paused) return row;
      const next = nextDueTime(row.cron, row.time_zone, await dbNow());
      return (
        await database.query<ScheduleRow>(
          "UPDATE schedules SET paused = false, next_due_at = $2 WHERE id = $1 RETURNING *",
          [row.id, next],
        )
      ).rows[0] as ScheduleRow;
    },

    async delete(tenant, schedule) {
      const row = await find(tenant, schedule);
      await database.query("DELETE FROM schedules WHERE id = $1", [row.id]);
    },
  };
}
