import type { Database } from "@packrun/db";
import { isPackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { RunService } from "../rpc/run-service.ts";
import type { ScheduleRow } from "./schedule-store.ts";
import { latestDueTime, nextDueTime } from "./schedule-times.ts";

/**
 * Idempotency keys of scheduled runs start with this; the key names the schedule and the due
 * time, and PostgreSQL's unique (tenant, idempotency_key) makes it one run per due time however
 * many executors fire the schedule at once. Refused on submissions from outside.
 */
export const scheduledRunKeyPrefix = "schedule:";

/** The idempotency key of the run a schedule makes for one due time. */
export function scheduledRunKey(scheduleId: string, dueAt: Date): string {
  return `${scheduledRunKeyPrefix}${scheduleId}:${dueAt.toISOString()}`;
}

/** Options of {@link fireDueSchedules}. */
export interface FireSchedulesOptions {
  database: Database;
  runs: RunService;
  logger: Logger;
  /**
   * A due time found later than this after it passed counts as missed (no executor was running
   * then) and is handled by the schedule's missed policy. Default 60 s.
   */
  missedGraceMs?: number;
}

/** What happened to one due time. */
export interface FiredDueTime {
  scheduleId: string;
  dueAt: Date;
  /** The run made (or found, when another executor made it first); undefined when none. */
  runId: string | undefined;
  /** Why no run was made; "" when one was. */
  skipped: string;
}

/**
 * One pass over the schedules that are due: for each, the latest due time that passed gets its
 * run (submitted with the schedule's creator as subject, in its tenant), unless a policy says
 * otherwise; then the schedule moves on to its next due time after now. Several executors may
 * run this at once: the run's idempotency key makes one run per due time, and the move is a
 * compare-and-set on the due time, so a schedule moves once. A crash between the run and the
 * move makes the next pass find the same run again.
 */
export async function fireDueSchedules(options: FireSchedulesOptions): Promise<FiredDueTime[]> {
  const { database, logger } = options;
  const graceMs = options.missedGraceMs ?? 60_000;
  const due = (
    await database.query<ScheduleRow & { db_now: Date }>(
      "SELECT *, now() AS db_now FROM schedules WHERE NOT paused AND next_due_at <= now() ORDER BY next_due_at LIMIT 100",
    )
  ).rows;
  const fired: FiredDueTime[] = [];
  for (const { db_now: now, ...schedule } of due) {
    const expected = schedule.next_due_at;
    if (expected === null) continue;
    // Within the grace period every due time gets its run, oldest first (a pass that comes late,
    // under load, catches up one due time per schedule per pass). Beyond it the due times were
    // missed (no executor ran): the missed policy handles them all at once, at the latest.
    const missed = now.getTime() - expected.getTime() > graceMs;
    const latest = latestDueTime(schedule.cron, schedule.time_zone, now) ?? expected;
    const dueAt = !missed || latest.getTime() < expected.getTime() ? expected : latest;
    let skipped = "";
    let runId: string | undefined;
    let error = "";
    if (missed && schedule.missed_policy === "skip") {
      skipped = `missed while no executor was running (missed policy skip)`;
    } else {
      const previous =
        schedule.overlap_policy === "skip"
          ? (
              await database.query<{ id: string }>(
                "SELECT id FROM runs WHERE schedule_id = $1 AND scheduled_for < $2 AND state IN ('queued', 'running', 'awaiting-approval') LIMIT 1",
                [schedule.id, dueAt],
              )
            ).rows[0]
          : undefined;
      if (previous !== undefined) {
        skipped = `run ${previous.id} of this schedule is still in flight (overlap policy skip)`;
      } else {
        try {
          const { view } = await options.runs.submit({
            tenant: schedule.tenant,
            pack: {
              ref: {
                name: schedule.pack_name,
                version: schedule.pack_version === "latest" ? "" : schedule.pack_version,
              },
            },
            inputs: schedule.inputs,
            secrets: {},
            priority: schedule.priority,
            idempotencyKey: scheduledRunKey(schedule.id, dueAt),
            submittedBy: schedule.created_by,
            labels: schedule.labels,
            ...(schedule.timeout_seconds === 0 ? {} : { timeoutSeconds: schedule.timeout_seconds }),
            schedule: {
              id: schedule.id,
              dueAt,
              afterPreviousRuns: schedule.overlap_policy === "queue",
            },
          });
          runId = view.run.id;
        } catch (cause) {
          // The due time is not retried for ever (a removed pack would block the schedule):
          // it is recorded on the schedule and logged, and the schedule moves on.
          error = isPackrunError(cause)
            ? `${cause.code}: ${cause.message}`
            : cause instanceof Error
              ? cause.message
              : String(cause);
          skipped = `the run could not be submitted: ${error}`;
          if (!isPackrunError(cause)) {
            // Infrastructure (planner down, database): try this due time again next pass.
            logger.warn(
              { err: cause, scheduleId: schedule.id, dueAt },
              "scheduled run not submitted; retrying next pass",
            );
            continue;
          }
        }
      }
    }
    const next = nextDueTime(schedule.cron, schedule.time_zone, missed ? now : dueAt);
    const moved = await database.query(
      `UPDATE schedules SET next_due_at = $3, last_due_at = $4,
              last_run_id = coalesce($5::uuid, last_run_id), last_error = $6
        WHERE id = $1 AND next_due_at = $2 AND NOT paused`,
      [schedule.id, expected, next, dueAt, runId ?? null, error],
    );
    if (moved.rowCount === 0) continue;
    const fields = {
      scheduleId: schedule.id,
      schedule: schedule.name,
      tenant: schedule.tenant,
      dueAt: dueAt.toISOString(),
      nextDueAt: next.toISOString(),
    };
    if (runId !== undefined) logger.info({ ...fields, runId }, "schedule fired");
    else if (error !== "") logger.error({ ...fields, error }, "schedule due time made no run");
    else logger.info({ ...fields, skipped }, "schedule due time skipped");
    fired.push({ scheduleId: schedule.id, dueAt, runId, skipped });
  }
  return fired;
}
