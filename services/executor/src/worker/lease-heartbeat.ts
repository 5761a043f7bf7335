import type { Logger } from "@packrun/logging";
import type { WatchedAttempt } from "../lease/lease-watchdog.ts";
import { monotonicMs } from "../lease/monotonic-clock.ts";
import type { ClaimedStep } from "../store/claim-step.ts";
import { LeaseLost, RunEnded } from "./attempt-errors.ts";
import type { WorkerContext } from "./worker-context.ts";

/** When the attempt's lease was last extended (monotonic clock), and its watchdog entry. */
export interface HeldLease {
  renewedAt: number;
  watched: WatchedAttempt;
}

/**
 * Extends a running attempt's lease; aborts the step when the claim is gone, the run ended, or
 * the database has been unreachable for longer than the lease.
 */
export async function extendLease(
  worker: WorkerContext,
  claimed: ClaimedStep,
  controller: AbortController,
  log: Logger,
  lease: HeldLease,
): Promise<void> {
  if (controller.signal.aborted) return;
  const { leaseMs, database } = worker.options;
  const attemptedAt = monotonicMs();
  // Cut off from the database for longer than the lease (heartbeats failing, or hanging on a
  // connection that no longer answers): the reconciler may already have given the step to
  // another worker, so this copy must not keep running, and acting, beside it.
  if (attemptedAt - lease.renewedAt >= leaseMs) {
    log.warn(
      "lease expired without a successful heartbeat (database unreachable); stopping the step",
    );
    controller.abort(new LeaseLost());
    return;
  }
  try {
    const row = (
      await database.query<{ run_state: string }>(
        `UPDATE steps s SET lease_expires_at = now() + make_interval(secs => $4)
        FROM runs r WHERE s.run_id = $1 AND s.step_id = $2 AND s.fence = $3 AND s.state = 'running' AND r.id = s.run_id
        RETURNING r.state AS run_state`,
        [claimed.run.id, claimed.step.step_id, claimed.fence, leaseMs / 1000],
      )
    ).rows[0];
    if (row === undefined) {
      log.warn("lease lost (another worker took the step over); stopping it");
      controller.abort(new LeaseLost());
    } else if (
      row.run_state === "cancelled" ||
      row.run_state === "failed" ||
      row.run_state === "timed_out"
    ) {
      log.info({ runState: row.run_state }, "run ended; stopping the step");
      controller.abort(new RunEnded());
    } else {
      lease.renewedAt = attemptedAt;
      lease.watched.renew(attemptedAt + leaseMs);
    }
  } catch (error) {
    log.warn({ err: error }, "lease heartbeat failed; will retry");
  }
}
