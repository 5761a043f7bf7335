import type { StepChange } from "./step-change.ts";

/** A parallel or map block's children, counted by where they are. */
export interface BlockCounts {
  total: number;
  /** Ended failed, timed out, cancelled, rejected or expired. */
  failed: number;
  /** Running, awaiting approval, or made claimable. */
  active: number;
  /** Not reached yet. */
  waiting: number;
}

/** What a running block does next. */
export type BlockStep =
  | { kind: "skip-waiting"; reason: string }
  | { kind: "start"; slots: number }
  | { kind: "wait" }
  | { kind: "finish"; change: StepChange };

/**
 * The block rule: start waiting children within `maxParallel`; after a failure (unless
 * `continueOnError`) or the run's end, skip the children not started and let the active ones
 * end; once nothing is active, the block succeeds, fails, or is cancelled with the run.
 */
export function nextBlockStep(
  blockId: string,
  block: { maxParallel: number; continueOnError: boolean },
  counts: BlockCounts,
  runEnded: string | undefined,
): BlockStep {
  const stopping = runEnded !== undefined || (counts.failed > 0 && !block.continueOnError);
  if (counts.waiting > 0) {
    if (stopping)
      return { kind: "skip-waiting", reason: `block "${blockId}" stopped after a child failed` };
    const slots = block.maxParallel === 0 ? counts.waiting : block.maxParallel - counts.active;
    return slots <= 0 ? { kind: "wait" } : { kind: "start", slots };
  }
  if (counts.active > 0) return { kind: "wait" };
  const failedNote = counts.failed > 0 ? `${counts.failed} of ${counts.total} children failed` : "";
  if (runEnded !== undefined && counts.failed === 0)
    return {
      kind: "finish",
      change: { to: "cancelled", finished: true, reason: `run ${runEnded}` },
    };
  if (stopping)
    return { kind: "finish", change: { to: "failed", finished: true, reason: failedNote } };
  return {
    kind: "finish",
    change: {
      to: "succeeded",
      finished: true,
      reason: failedNote === "" ? "" : `${failedNote} (continueOnError)`,
    },
  };
}
