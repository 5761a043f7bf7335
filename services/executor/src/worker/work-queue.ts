/** A claimable step on the queue. The database decides whether it really runs. */
export interface WorkItem {
  runId: string;
  stepId: string;
  tenant: string;
  /** Higher first. */
  priority: number;
  /** Attempts already made when it was queued: part of the dedup id, so a retry is a new item. */
  attempt: number;
}

/** What a handler tells the queue after looking at an item. */
export type WorkOutcome =
  /** Done (ran, or was stale): remove it. */
  | { kind: "done" }
  /** Not yet (tenant at its limit, or not due): put it back for later. */
  | { kind: "later"; delayMs: number };

/** Consumes work items; at most `concurrency` at once. */
export type WorkHandler = (item: WorkItem) => Promise<WorkOutcome>;

/** Counts for metrics and health. */
export interface QueueDepth {
  waiting: number;
  delayed: number;
  active: number;
  deadLetter: number;
}

/**
 * The executor's work queue: ready steps in priority order, delayed retries, a dead-letter
 * list. It is a cache of what Postgres says is claimable: losing it loses nothing (the
 * reconciler puts every claimable step back), and an item for a step that is no longer
 * claimable is simply dropped by the worker's claim.
 */
export interface WorkQueue {
  /** Adds items; an item already queued (same run, step and attempt) is not added twice. */
  enqueue(items: readonly (WorkItem & { delayMs: number })[]): Promise<void>;
  /** Starts consuming. */
  consume(handler: WorkHandler, concurrency: number): void;
  /** Stops taking new items and waits for handlers in progress. */
  stopConsuming(): Promise<void>;
  /** Records a permanently failed step for operators. */
  deadLetter(item: WorkItem, reason: string): Promise<void>;
  /** Drops re-driven entries from the dead-letter list (run, step and attempt match). */
  removeDeadLetters?(
    items: readonly Pick<WorkItem, "runId" | "stepId" | "attempt">[],
  ): Promise<void>;
  depth(): Promise<QueueDepth>;
  close(): Promise<void>;
}

/**
 * The queue's dedup id of an item: run, step and attempt (step ids may contain ':' and '[',
 * which BullMQ ids may not, so the step id is encoded).
 */
export function workItemId(item: Pick<WorkItem, "runId" | "stepId" | "attempt">): string {
  return `${item.runId}.${Buffer.from(item.stepId).toString("base64url")}.${item.attempt}`;
}
