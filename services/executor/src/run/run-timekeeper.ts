import { type Database, isConnectionError } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { RunService } from "../rpc/run-service.ts";
import { fireDueSchedules } from "../schedules/schedule-runs.ts";
import { type AdmissionLimits, admitWaitingRuns } from "./run-admission.ts";
import { expireRunDeadlines } from "./run-deadline.ts";

/** Options of {@link createRunTimekeeper}. */
export interface RunTimekeeperOptions {
  database: Database;
  runs: RunService;
  logger: Logger;
  admission: AdmissionLimits;
  /** How often to look (default 1000 ms; due times of a schedule are whole seconds at most). */
  intervalMs?: number;
  /** See {@link fireDueSchedules}. */
  missedGraceMs?: number;
  /** Called for runs a deadline ended. */
  onRunFinished?: (runId: string) => void;
}

/** What one pass did, for tests. */
export interface TimekeeperPass {
  fired: number;
  admitted: string[];
  timedOut: string[];
}

/** The loop that acts on time: fires schedules, starts waiting runs, ends runs past deadline. */
export interface RunTimekeeper {
  /** One pass now. */
  tick(): Promise<TimekeeperPass>;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Creates the timekeeper. Every executor process runs one; all their decisions are made in
 * PostgreSQL (idempotency keys, row locks, compare-and-set), so no leader is needed.
 */
export function createRunTimekeeper(options: RunTimekeeperOptions): RunTimekeeper {
  const { database, logger, runs } = options;
  const intervalMs = options.intervalMs ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> = Promise.resolve();
  let stopped = true;

  const tick = async (): Promise<TimekeeperPass> => {
    const fired = await fireDueSchedules({
      database,
      runs,
      logger,
      ...(options.missedGraceMs === undefined ? {} : { missedGraceMs: options.missedGraceMs }),
    });
    const admitted = await admitWaitingRuns({
      database,
      logger,
      limits: options.admission,
      enqueue: runs.enqueue,
    });
    const timedOut = await expireRunDeadlines(database, logger, runs.enqueue);
    for (const runId of timedOut) options.onRunFinished?.(runId);
    return { fired: fired.length, admitted, timedOut };
  };

  const loop = () => {
    if (stopped) return;
    current = tick()
      .catch((error: unknown) => {
        if (isConnectionError(error))
          logger.warn({ err: error }, "timekeeper pass failed: database unreachable");
        else logger.error({ err: error }, "timekeeper pass failed");
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, intervalMs);
      });
  };

  return {
    tick,
    start() {
      if (!stopped) return;
      stopped = false;
      timer = setTimeout(loop, 0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
