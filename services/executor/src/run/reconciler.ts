import { hostname } from "node:os";
import { type Database, isConnectionError } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { ReadyWork, StepRow } from "../store/run-rows.ts";
import { RunScheduler } from "./scheduler.ts";

/** Options for {@link createReconciler}. */
export interface ReconcilerOptions {
  database: Database;
  logger: Logger;
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>;
  /** How often to sweep. */
  intervalMs?: number;
  /** A claimable step not picked up for this long is put on the queue again. */
  requeueAfterMs?: number;
  /** Lease losses retried without using the step's retry budget (then the step fails). */
  maxLostAttempts?: number;
  /** Called for runs this sweep moved to a terminal state. */
  onRunFinished?: (runId: string) => void;
  /** A worker without a heartbeat for this long is declared stopped (default 1 minute). */
  workerLostAfterMs?: number;
  /**
   * Called (without waiting) with the id of a worker of this machine that was just declared
   * lost: kills what its steps left running here (the runtime's `reapOrphans`).
   */
  reapWorker?: (workerId: string) => Promise<unknown>;
  /**
   * After the database was unreachable, expired leases are left alone for this long (default
   * 15 s, the default lease): a worker whose step finished during the outage is still trying to
   * record its result, and taking the step away would run finished work again.
   */
  outageGraceMs?: number;
}

/** What one sweep did, for logs and tests. */
export interface SweepReport {
  leasesExpired: number;
  requeued: number;
  gatesExpired: number;
}

/** Periodic repair of everything the database says should be happening but is not. */
export interface Reconciler {
  /** One sweep now (tests and startup). */
  sweep(): Promise<SweepReport>;
  start(): void;
  stop(): Promise<void>;
}

/**
 * The reconciler makes Postgres the truth for the queue and the workers:
 * - a running step whose lease expired (its worker died or was cut off) gets a new fencing
 *   token, so the old worker's late writes are rejected, and goes back to pending (or fails
 *   after too many losses);
 * - a claimable step that has not been picked up for a while is queued again, which rebuilds
 *   the queue after Redis lost its data;
 * - approval gates past their expiry are expired, which fails their run;
 * - workers silent for too long are declared stopped, and those of this machine reaped.
 */
export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { database, logger } = options;
  const requeueAfter = (options.requeueAfterMs ?? 3000) / 1000;
  const maxLost = options.maxLostAttempts ?? 3;
  const lostAfter = (options.workerLostAfterMs ?? 60_000) / 1000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const reaping = new Set<Promise<unknown>>();

  const expireLeases = async (): Promise<number> => {
    const expired = (
      await database.query<{ run_id: string; step_id: string }>(
        "SELECT run_id, step_id FROM steps WHERE state = 'running' AND lease_owner IS NOT NULL AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT 200",
      )
    ).rows;
    for (const { run_id, step_id } of expired) {
      const result = await database.transaction(async (tx) => {
        const scheduler = await RunScheduler.lock(tx, run_id);
        if (scheduler === undefined) return undefined;
        const step = (
          await tx.query<StepRow>(
            "SELECT * FROM steps WHERE run_id = $1 AND step_id = $2 AND state = 'running' AND lease_expires_at < now() FOR UPDATE",
            [run_id, step_id],
          )
        ).rows[0];
        if (step === undefined) return undefined;
        const lostBy = step.lease_owner;
        await tx.query(
          "UPDATE step_attempts SET state = 'lost', finished_at = now(), reason = $4 WHERE run_id = $1 AND step_id = $2 AND attempt = $3",
          [run_id, step_id, step.attempt, `lease expired (worker ${lostBy} lost)`],
        );
        // The life cycle gives the step a new fence first thing: whatever the lost worker
        // writes from now on matches nothing.
        await scheduler.decide(step, {
          type: "lease-expired",
          fence: step.fence,
          maxLostAttempts: maxLost,
        });
        logger.warn(
          { runId: run_id, stepId: step_id, worker: lostBy },
          "lease expired; step taken back",
        );
        return { ready: scheduler.ready, finished: scheduler.finishedState !== undefined };
      });
      if (result === undefined) continue;
      await options.enqueue(result.ready);
      if (result.finished) options.onRunFinished?.(run_id);
    }
    return expired.length;
  };

  const requeue = async (): Promise<number> => {
    const rows = (
      await database.query<{
        run_id: string;
        step_id: string;
        tenant: string;
        priority: number;
        attempt: number;
        wait_ms: number;
      }>(
        `SELECT s.run_id, s.step_id, s.tenant, r.priority, s.attempt
         FROM steps s JOIN runs r ON r.id = s.run_id
        WHERE s.state = 'pending' AND s.ready_at IS NOT NULL AND s.kind = 'run'
          AND s.ready_at < now() - make_interval(secs => $1)
          AND r.state IN ('running', 'awaiting-approval')
        ORDER BY s.ready_at LIMIT 5000`,
        [requeueAfter],
      )
    ).rows;
    await options.enqueue(
      rows.map((row) => ({
        runId: row.run_id,
        stepId: row.step_id,
        tenant: row.tenant,
        priority: row.priority,
        attempt: row.attempt,
        delayMs: 0,
      })),
    );
    return rows.length;
  };

  const expireGates = async (): Promise<number> => {
    const gates = (
      await database.query<{ run_id: string; step_id: string }>(
        "SELECT run_id, step_id FROM steps WHERE state = 'awaiting-approval' AND expires_at < now() LIMIT 200",
      )
    ).rows;
    for (const { run_id, step_id } of gates) {
      const result = await database.transaction(async (tx) => {
        const scheduler = await RunScheduler.lock(tx, run_id);
        const step = scheduler === undefined ? undefined : await scheduler.step(step_id);
        if (scheduler === undefined || step === undefined || step.state !== "awaiting-approval")
          return undefined;
        await scheduler.decide(step, { type: "gate-expired" });
        return { ready: scheduler.ready, finished: scheduler.finishedState !== undefined };
      });
      if (result === undefined) continue;
      await options.enqueue(result.ready);
      if (result.finished) options.onRunFinished?.(run_id);
    }
    return gates.length;
  };

  /**
   * Declares silent workers stopped. Lost workers of this machine are reaped here (their
   * leftover processes and containers killed); other machines' workers are declared stopped
   * only after twice as long, so that their own machine's executor gets to reap them first.
   */
  const expireWorkers = async (): Promise<void> => {
    const local = (
      await database.query<{ id: string }>(
        "UPDATE workers SET status = 'stopped' WHERE status <> 'stopped' AND host = $1 AND last_heartbeat_at < now() - make_interval(secs => $2) RETURNING id",
        [hostname(), lostAfter],
      )
    ).rows;
    await database.query(
      "UPDATE workers SET status = 'stopped' WHERE status <> 'stopped' AND last_heartbeat_at < now() - make_interval(secs => $1)",
      [lostAfter * 2],
    );
    for (const { id } of local) {
      if (options.reapWorker === undefined) break;
      logger.warn({ worker: id }, "worker lost; reaping what its steps left running");
      const done = options
        .reapWorker(id)
        .catch((error) => logger.warn({ err: error, worker: id }, "reaping orphans failed"))
        .finally(() => reaping.delete(done));
      reaping.add(done);
    }
  };

  // The lease clock runs on in the database while nobody can heartbeat: an outage alone expires
  // every lease. Count lease expiry only from a grace period after the database came back.
  const outageGraceMs = options.outageGraceMs ?? 15_000;
  let databaseLost = false;
  let graceUntil = 0;

  const sweep = async (): Promise<SweepReport> => {
    // Sweeps of several executors may overlap: every repair re-checks its condition under the
    // run's row lock, and queue entries are deduplicated, so overlapping sweeps are harmless.
    if (databaseLost) {
      databaseLost = false;
      graceUntil = performance.now() + outageGraceMs;
      logger.info(
        { graceMs: outageGraceMs },
        "database back: lease expiry paused for the grace period",
      );
    }
    const leasesExpired = performance.now() < graceUntil ? 0 : await expireLeases();
    const gatesExpired = await expireGates();
    const requeued = await requeue();
    await expireWorkers();
    return { leasesExpired, requeued, gatesExpired };
  };

  return {
    sweep,
    start() {
      const tick = () => {
        running = sweep()
          .catch((error) => {
            if (isConnectionError(error)) databaseLost = true;
            logger.warn({ err: error }, "reconciler sweep failed");
          })
          .finally(() => {
            if (timer !== undefined) timer = setTimeout(tick, options.intervalMs ?? 1000);
          });
      };
      timer = setTimeout(tick, 0);
    },
    async stop() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await running;
      await Promise.all(reaping);
    },
  };
}
