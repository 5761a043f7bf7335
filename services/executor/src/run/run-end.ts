import { sharedPlanningPool } from "@packrun/planning";
import type { StepRow } from "../store/run-rows.ts";
import * as runStore from "../store/run-store.ts";
import { type RunScheduler, runDeadlineReason } from "./scheduler.ts";
import { assertRunTransition, type StepState, terminalRunStates } from "./state-machine.ts";
import { loadStepBindings } from "./step-bindings.ts";
import { stepEvent } from "./step-event.ts";

/** Fails the run: the remaining not-started steps are skipped; running ones finish on their own. */
export async function failRun(scheduler: RunScheduler, reason: string): Promise<void> {
  const run = scheduler.run;
  // A step stopped by the run's deadline (its timer is cut to it) fails the run only
  // because the deadline passed: the run ends timed_out, as the deadline sweep would end it.
  if (run.deadline_at !== null && (await scheduler.deadlinePassed())) {
    await endRun(scheduler, "timed_out", runDeadlineReason(run.timeout_seconds), "cancelled");
    return;
  }
  await endRun(scheduler, "failed", reason, "skipped");
}

/**
 * Ends the run: steps not started yet become `notStarted` (skipped on failure, cancelled on
 * cancel), blocks with nothing left running are closed; running steps finish on their own
 * (their workers see the run state and stop).
 */
export async function endRun(
  scheduler: RunScheduler,
  state: "failed" | "cancelled" | "timed_out",
  reason: string,
  notStarted: "skipped" | "cancelled",
): Promise<void> {
  const { tx } = scheduler;
  const runId = scheduler.run.id;
  const untouched = (
    await tx.query<StepRow & { old_state: StepState }>(runStore.endNotStartedSteps, [
      runId,
      notStarted,
      `run ${state}: ${reason}`,
    ])
  ).rows;
  scheduler.changed();
  await scheduler.events(untouched.map((row) => stepEvent(row, row.old_state)));
  await finishRun(scheduler, state, reason);
  // Close blocks with nothing left running, innermost first, until nothing changes.
  for (let changed = true; changed; ) {
    changed = false;
    const blocks = (await tx.query<{ step_id: string }>(runStore.runningBlocks, [runId])).rows;
    for (const block of blocks)
      if ((await scheduler.progressContainer(block.step_id)) !== undefined) changed = true;
  }
  await scheduler.settle();
}

/** Moves the run to a terminal state, computes its outputs and settles it when it can. */
export async function finishRun(
  scheduler: RunScheduler,
  state: "succeeded" | "failed" | "cancelled" | "timed_out",
  reason: string,
): Promise<void> {
  if (terminalRunStates.has(scheduler.run.state)) return;
  let outputs: Record<string, unknown> = {};
  if (state === "succeeded") {
    try {
      outputs = await runOutputs(scheduler);
    } catch (error) {
      state = "failed";
      reason = `outputs could not be evaluated: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  // Success is reached through running (e.g. the approval of a run's last step, a gate).
  if (
    (scheduler.run.state === "queued" || scheduler.run.state === "awaiting-approval") &&
    state === "succeeded"
  )
    await scheduler.setRunState("running", "");
  assertRunTransition(scheduler.run.id, scheduler.run.state, state);
  const row = (
    await scheduler.tx.query<{ settled: boolean }>(runStore.finishRun, [
      scheduler.run.id,
      state,
      reason,
      JSON.stringify(outputs),
    ])
  ).rows[0];
  scheduler.run = { ...scheduler.run, state, reason };
  scheduler.finishedState = state;
  // The terminal event is the last event of a run: it is recorded when the run settles
  // (here when no step runs any more, else when the last running step ends).
  if (row?.settled === true) await scheduler.recordSettled();
}

/** The run's declared outputs, evaluated over its inputs and steps. */
async function runOutputs(scheduler: RunScheduler): Promise<Record<string, unknown>> {
  const run = scheduler.run;
  if (!run.has_outputs) return {};
  const declared =
    (await scheduler.planPart<{ name: string; path: unknown; expression: unknown }[]>("outputs")) ??
    [];
  if (declared.length === 0) return {};
  const bindings = { inputs: run.inputs, steps: await loadStepBindings(scheduler.tx, run.id) };
  const pool = sharedPlanningPool();
  return Object.fromEntries(
    await Promise.all(
      declared.map(
        async (output) =>
          [
            output.name,
            await pool.resolveRuntimeValues(output.expression ?? output.path, bindings),
          ] as const,
      ),
    ),
  );
}
