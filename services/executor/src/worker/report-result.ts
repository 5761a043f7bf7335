import { setTimeout as sleep } from "node:timers/promises";
import { isConnectionError, type Queryable } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { AttemptEnd } from "../run/attempt-ended.ts";
import { RunScheduler } from "../run/scheduler.ts";
import type { ClaimedStep } from "../store/claim-step.ts";
import type { ReadyWork, StepRow } from "../store/run-rows.ts";
import type { RecordedResult } from "./attempt-errors.ts";
import type { WorkerContext } from "./worker-context.ts";

/** How long a finished step's result is retried while the database is unreachable. */
const RESULT_RETRY_LIMIT_MS = 10 * 60_000;

/**
 * Records the attempt's result, retrying while the database is unreachable: the step has run,
 * and a result lost here would make it run again once its lease expired. The reconciler leaves
 * expired leases alone for a grace period after an outage, so this retry gets there first.
 * Gives up when the worker drains or after {@link RESULT_RETRY_LIMIT_MS}.
 */
export async function reportDurably(
  worker: WorkerContext,
  claimed: ClaimedStep,
  result: RecordedResult,
  log: Logger,
): Promise<void> {
  const started = performance.now();
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      await reportResult(worker, claimed, result, log);
      return;
    } catch (error) {
      const elapsed = performance.now() - started;
      if (!isConnectionError(error) || worker.draining() || elapsed > RESULT_RETRY_LIMIT_MS)
        throw error;
      log.warn(
        { err: error, retryInMs: delay },
        "cannot record the step's result (database unreachable); retrying",
      );
      await sleep(delay);
    }
  }
}

/**
 * Records the attempt's result in one transaction if this worker's claim still holds (fencing),
 * then queues the steps it made ready.
 */
export async function reportResult(
  worker: WorkerContext,
  claimed: ClaimedStep,
  result: RecordedResult,
  log: Logger,
): Promise<void> {
  const { options } = worker;
  const outcome = await options.database.transaction(async (tx) => {
    const locked = await RunScheduler.lockForClaim(
      tx,
      {
        runId: claimed.run.id,
        stepId: claimed.step.step_id,
        fence: claimed.fence,
        owner: worker.id,
        attempt: claimed.step.attempt,
      },
      {
        state: result.handedBack === true ? "handed-back" : result.outcome,
        exitCode: result.exitCode,
        reason: result.reason,
        cpuMicros: Math.round(result.cpuMicros),
        peakMemoryBytes: Math.round(result.peakMemoryBytes),
        ...(result.image === undefined ? {} : { image: result.image }),
      },
    );
    if (locked === undefined) return "gone" as const;
    if (!locked.holdsClaim) return "fenced" as const;
    // While the claim holds, only the lease columns of the claimed row have changed.
    return record(worker, tx, locked.scheduler, claimed.step, result);
  });
  if (outcome === "fenced") {
    log.warn(
      { fence: claimed.fence },
      "result discarded: this worker's claim was superseded (fencing)",
    );
    return;
  }
  if (outcome === "gone") return;
  await options.enqueue(outcome.ready);
  if (outcome.finished) options.onRunFinished?.(claimed.run.id);
  log.info(
    {
      outcome: result.outcome,
      exitCode: result.exitCode,
      durationMs: result.durationMs,
      state: outcome.state,
    },
    "step finished",
  );
}

/**
 * Feeds the report to the step's life cycle (`run/life-cycle.ts`: retry, hand back, cancel or
 * fail) and applies its decision; a step that failed for good is also dead-lettered.
 */
async function record(
  worker: WorkerContext,
  tx: Queryable,
  scheduler: RunScheduler,
  step: StepRow,
  result: RecordedResult,
): Promise<{ ready: ReadyWork[]; finished: boolean; state: string }> {
  const decided = await scheduler.decide(step, {
    type: "attempt-ended",
    fence: step.fence,
    owner: worker.id,
    end: attemptEnd(result),
  });
  if (decided.deadLetter !== undefined) {
    await tx.query(
      "INSERT INTO dead_letters (run_id, step_id, attempt, reason) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
      [step.run_id, step.step_id, step.attempt, decided.deadLetter],
    );
    await worker.options.queue
      .deadLetter(
        {
          runId: step.run_id,
          stepId: step.step_id,
          tenant: step.tenant,
          priority: scheduler.run.priority,
          attempt: step.attempt,
        },
        decided.deadLetter,
      )
      .catch(() => {});
  }
  return {
    ready: scheduler.ready,
    finished: scheduler.finishedState !== undefined,
    state: scheduler.run.state,
  };
}

/** The life cycle's view of a worker's result. */
function attemptEnd(result: RecordedResult): Exclude<AttemptEnd, { kind: "lost" }> {
  if (result.handedBack === true)
    return { kind: "handed-back", exitCode: result.exitCode, reason: result.reason };
  return {
    kind: "reported",
    outcome: result.outcome,
    exitCode: result.exitCode,
    reason: result.reason,
    permanent: result.permanent === true,
    outputs: {
      ...result.outputs,
      ...Object.fromEntries(
        result.artifacts.map((artifact) => [`artifact:${artifact.name}`, artifact.digest]),
      ),
    },
  };
}
