import type { Database, Queryable } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { ReadyWork } from "../store/run-rows.ts";
import { RunScheduler } from "./scheduler.ts";

/** How the reasons of runs held back by the per-user limit start. */
const runSlotWait = "waiting for a run slot";

/** Limits on which queued runs may start. */
export interface AdmissionLimits {
  /**
   * Runs in flight (running or awaiting approval) per tenant and subject (`submitted_by`); 0 =
   * unlimited. Further runs of that subject wait, queued, in the order they were submitted.
   */
  perSubjectRuns: number;
}

/**
 * Starts a queued run the caller has locked (through `scheduler`) if nothing holds it back;
 * otherwise records why it waits. Returns that reason, or "" when the run started. Held back:
 * - a `not_before` in the future (a delayed run);
 * - an earlier run of the same schedule still in flight (overlap policy `queue`);
 * - its subject's runs in flight at the limit, or an earlier run of the subject waiting for it.
 * The subject's check runs under a transaction-scoped advisory lock of (tenant, subject), so
 * two executors admitting at once cannot both take the last slot.
 */
export async function admitRun(
  tx: Queryable,
  scheduler: RunScheduler,
  limits: AdmissionLimits,
): Promise<string> {
  const run = scheduler.run;
  if (run.state !== "queued") return "";
  const held = await waitingReason(tx, scheduler, limits);
  if (held !== "") {
    if (held !== run.waiting_reason) {
      await tx.query("UPDATE runs SET waiting_reason = $2 WHERE id = $1", [run.id, held]);
      scheduler.run = { ...run, waiting_reason: held };
    }
    return held;
  }
  await scheduler.startRun();
  return "";
}

async function waitingReason(
  tx: Queryable,
  scheduler: RunScheduler,
  limits: AdmissionLimits,
): Promise<string> {
  const run = scheduler.run;
  // Only a delayed run or a run of a schedule needs the database's word (clock, overlap flag).
  const delayed =
    run.not_before !== null &&
    (
      await tx.query<{ waiting: boolean }>(
        "SELECT not_before IS NOT NULL AND not_before > now() AS waiting FROM runs WHERE id = $1",
        [run.id],
      )
    ).rows[0]?.waiting;
  if (delayed === true && run.not_before !== null)
    return `delayed: starts at ${run.not_before.toISOString()} (notBefore)`;
  const serial =
    run.schedule_id !== null &&
    (
      await tx.query<{ after_schedule_runs: boolean }>(
        "SELECT after_schedule_runs FROM runs WHERE id = $1",
        [run.id],
      )
    ).rows[0]?.after_schedule_runs;
  if (serial === true && run.schedule_id !== null) {
    const previous = (
      await tx.query<{ id: string }>(
        `SELECT id FROM runs
          WHERE schedule_id = $1 AND id <> $2 AND scheduled_for < $3
            AND state IN ('queued', 'running', 'awaiting-approval')
          ORDER BY scheduled_for LIMIT 1`,
        [run.schedule_id, run.id, run.scheduled_for],
      )
    ).rows[0];
    if (previous !== undefined)
      return `waiting for run ${previous.id} of the same schedule to end (overlap policy queue)`;
  }
  if (limits.perSubjectRuns > 0) {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
      `packrun.subject.${run.tenant}/${run.submitted_by}`,
    ]);
    const row = (
      await tx.query<{ in_flight: number; earlier: string | null }>(
        `SELECT (SELECT count(*)::int FROM runs
                  WHERE tenant = $1 AND submitted_by = $2 AND state IN ('running', 'awaiting-approval')) AS in_flight,
                (SELECT id::text FROM runs
                  WHERE tenant = $1 AND submitted_by = $2 AND state = 'queued' AND id <> $3
                    AND (created_at, id) < ($4, $3::uuid)
                    AND (not_before IS NULL OR not_before <= now()) AND NOT after_schedule_runs
                  ORDER BY created_at, id LIMIT 1) AS earlier`,
        [run.tenant, run.submitted_by, run.id, run.created_at],
      )
    ).rows[0];
    const who = run.submitted_by === "" ? "the anonymous subject" : run.submitted_by;
    if (row !== undefined && row.in_flight >= limits.perSubjectRuns)
      return `${runSlotWait}: ${who} has ${row.in_flight} run(s) in flight (limit ${limits.perSubjectRuns} per user)`;
    if (row?.earlier !== null && row?.earlier !== undefined)
      return `${runSlotWait}: ${who}'s earlier run ${row.earlier} starts first`;
  }
  return "";
}

/** Options of {@link admitWaitingRuns}. */
export interface AdmitWaitingOptions {
  database: Database;
  logger: Logger;
  limits: AdmissionLimits;
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>;
}

/**
 * One pass over the queued runs, oldest first: starts those nothing holds back any more. Safe to
 * run in several executors at once (each run is locked, and skipped when another holds it).
 * Returns the ids of the runs it started.
 */
export async function admitWaitingRuns(options: AdmitWaitingOptions): Promise<string[]> {
  const { database, limits } = options;
  const candidates = (
    await database.query<{ id: string; tenant: string; submitted_by: string }>(
      `SELECT id, tenant, submitted_by FROM runs
        WHERE state = 'queued' AND (not_before IS NULL OR not_before <= now())
        ORDER BY created_at, id LIMIT 500`,
    )
  ).rows;
  const started: string[] = [];
  // Subjects at their limit in this pass: their later runs wait behind the held one anyway.
  const full = new Set<string>();
  for (const { id, tenant, submitted_by } of candidates) {
    const subject = JSON.stringify([tenant, submitted_by]);
    if (full.has(subject)) continue;
    const ready = await database.transaction(async (tx) => {
      const locked = (
        await tx.query<{ id: string }>(
          "SELECT id FROM runs WHERE id = $1 AND state = 'queued' FOR UPDATE SKIP LOCKED",
          [id],
        )
      ).rows[0];
      if (locked === undefined) return undefined;
      const scheduler = await RunScheduler.lock(tx, id);
      if (scheduler === undefined) return undefined;
      const held = await admitRun(tx, scheduler, limits);
      if (held.startsWith(runSlotWait)) full.add(subject);
      return held === "" ? scheduler.ready : undefined;
    });
    if (ready === undefined) continue;
    await options.enqueue(ready);
    started.push(id);
    options.logger.info({ runId: id }, "queued run admitted");
  }
  return started;
}
