import type { StepRow } from "../store/run-rows.ts";
import * as runStore from "../store/run-store.ts";
import { type BlockCounts, nextBlockStep } from "./block-rule.ts";
import type { RunScheduler } from "./scheduler.ts";
import { terminalRunStates } from "./state-machine.ts";
import { stepEvent } from "./step-event.ts";

/** A block row with its children's counters (see `blockWithChildCounts`). */
type CountedBlock = StepRow & {
  children_total: number;
  children_waiting: number;
  children_active: number;
  children_failed: number;
};

/**
 * Starts further children of a running parallel/map step within its maxParallel, and
 * finishes it when no child is left (the rule: {@link nextBlockStep}). Returns the block when
 * it finished.
 */
export async function progressBlock(
  scheduler: RunScheduler,
  blockId: string,
): Promise<StepRow | undefined> {
  const runId = scheduler.run.id;
  for (;;) {
    const row = (
      await scheduler.tx.query<CountedBlock>(runStore.blockWithChildCounts, [runId, blockId])
    ).rows[0];
    if (row === undefined || row.state !== "running") return undefined;
    const { children_total, children_waiting, children_active, children_failed, ...block } = row;
    const counts: BlockCounts = {
      total: children_total,
      waiting: children_waiting,
      active: children_active,
      failed: children_failed,
    };
    const planned = block.planned;
    const rule =
      planned.kind === "parallel"
        ? planned.parallel
        : planned.kind === "map"
          ? planned.map
          : undefined;
    if (rule === undefined) return undefined;
    const runEnded = terminalRunStates.has(scheduler.run.state) ? scheduler.run.state : undefined;
    const next = nextBlockStep(blockId, rule, counts, runEnded);
    switch (next.kind) {
      case "wait":
        return undefined;
      case "finish":
        return scheduler.apply(block, next.change);
      case "skip-waiting":
        await skipChildren(scheduler, blockId, next.reason);
        continue;
      case "start":
        if ((await startChildren(scheduler, blockId, next.slots)) === 0) return undefined;
    }
  }
}

/** Reaches the next `slots` children of a block; how many of them finished at once. */
async function startChildren(
  scheduler: RunScheduler,
  blockId: string,
  slots: number,
): Promise<number> {
  const next = (
    await scheduler.tx.query<StepRow>(runStore.nextChildren, [scheduler.run.id, blockId, slots])
  ).rows;
  let finishedNow = 0;
  for (const batch of activationBatches(next)) {
    if (Array.isArray(batch)) await readyRunSteps(scheduler, batch);
    else if ((await scheduler.activate(batch)) !== undefined) finishedNow++;
  }
  return finishedNow;
}

/**
 * Makes plain `run` steps (no run-time condition) claimable in one statement: what activation
 * does for each of them, for a map's many children at once.
 */
async function readyRunSteps(scheduler: RunScheduler, steps: readonly StepRow[]): Promise<void> {
  const updated = (
    await scheduler.tx.query<StepRow>(runStore.readyRunSteps, [
      scheduler.run.id,
      steps.map((step) => step.step_id),
    ])
  ).rows;
  if (updated.length === 0) return;
  const byId = new Map(updated.map((row) => [row.step_id, row]));
  const inOrder = steps.flatMap((step) => byId.get(step.step_id) ?? []);
  await scheduler.events(inOrder.map((row) => stepEvent(row, "pending", "ready")));
  scheduler.queueReady(inOrder);
}

/** Skips every not-yet-started step below `parentId` (recursively). */
async function skipChildren(
  scheduler: RunScheduler,
  parentId: string,
  reason: string,
): Promise<void> {
  let parents = [parentId];
  while (parents.length > 0) {
    const skipped = (
      await scheduler.tx.query<StepRow>(runStore.skipChildren, [scheduler.run.id, parents, reason])
    ).rows;
    scheduler.changed();
    await scheduler.events(skipped.map((row) => stepEvent(row, "pending")));
    parents = skipped
      .filter((row) => row.kind === "parallel" || row.kind === "map")
      .map((row) => row.step_id);
  }
}

/**
 * Splits steps to activate, in order, into runs of plain `run` steps (activated together by one
 * statement) and single steps that need activation's evaluation.
 */
function activationBatches(steps: readonly StepRow[]): (StepRow[] | StepRow)[] {
  const batches: (StepRow[] | StepRow)[] = [];
  for (const step of steps) {
    const plain =
      step.kind === "run" &&
      step.planned.enabled === true &&
      step.state === "pending" &&
      step.ready_at === null;
    const last = batches.at(-1);
    if (!plain) batches.push(step);
    else if (Array.isArray(last)) last.push(step);
    else batches.push([step]);
  }
  return batches;
}
