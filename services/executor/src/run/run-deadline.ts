import type { Database } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { ReadyWork } from "../store/run-rows.ts";
import { RunScheduler, runDeadlineReason } from "./scheduler.ts";

/**
 * How long a step attempt may run: its own timeout, cut short by the run's deadline, so the
 * step is stopped exactly as on its own timeout (SIGTERM, the kill grace, SIGKILL) when the run
 * deadline comes first. Null: no limit.
 */
export function stepTimeoutMs(
  stepTimeoutSeconds: number | null,
  deadlineAt: Date | null,
  now: number = Date.now(),
): number | null {
  const own = stepTimeoutSeconds === null ? null : stepTimeoutSeconds * 1000;
  if (deadlineAt === null) return own;
  const left = Math.max(0, new Date(deadlineAt).getTime() - now);
  return own === null ? left : Math.min(own, left);
}

/**
 * Ends every run whose deadline passed: `timed_out` with the reason; steps not started are
 * cancelled, gates waiting are cancelled, and running steps are stopped by their workers (which
 * see the run state at their next heartbeat, if their own timer has not fired already).
 * Returns the ids of the runs it ended.
 */
export async function expireRunDeadlines(
  database: Database,
  logger: Logger,
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>,
): Promise<string[]> {
  const due = (
    await database.query<{ id: string }>(
      "SELECT id FROM runs WHERE state IN ('running', 'awaiting-approval') AND deadline_at IS NOT NULL AND deadline_at <= now() ORDER BY deadline_at LIMIT 200",
    )
  ).rows;
  const ended: string[] = [];
  for (const { id } of due) {
    const outcome = await database.transaction(async (tx) => {
      const scheduler = await RunScheduler.lock(tx, id);
      if (scheduler === undefined) return undefined;
      const run = scheduler.run;
      if (run.state !== "running" && run.state !== "awaiting-approval") return undefined;
      // Read under the lock from the database clock: the row may have changed since the scan.
      if (!(await scheduler.deadlinePassed())) return undefined;
      await scheduler.endRun("timed_out", runDeadlineReason(run.timeout_seconds), "cancelled");
      return { ready: scheduler.ready, tenant: run.tenant };
    });
    if (outcome === undefined) continue;
    await enqueue(outcome.ready);
    ended.push(id);
    logger.info({ runId: id, tenant: outcome.tenant }, "run deadline passed; run timed out");
  }
  return ended;
}
