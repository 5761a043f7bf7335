import type { StepState } from "./state-machine.ts";

/**
 * What one transition does to a step row, as data: the store turns it into one fixed
 * statement (`store/step-store.ts`), so no SQL travels between modules. Times are relative to
 * the database clock, the only clock scheduling uses. A field left out keeps its value.
 */
export interface StepChange {
  to: StepState;
  reason?: string;
  exitCode?: number | null;
  outputs?: Record<string, unknown>;
  failedAttempts?: number;
  lostAttempts?: number;
  /** started_at = now(). */
  started?: true;
  /** finished_at = now(). */
  finished?: true;
  /** ready_at = now() + this many seconds (0: claimable now). */
  readyInSeconds?: number;
  /** next_attempt_at = now() + this many seconds (a retry's due time, shown to users). */
  retryInSeconds?: number;
  /** expires_at = now() + this many seconds; null clears it. */
  expiresInSeconds?: number | null;
  /** Clears the lease (owner and expiry): the attempt is over. */
  releaseLease?: true;
  /** A new fencing token: whatever the previous holder writes from now on matches nothing. */
  newFence?: true;
}

/** True when the change makes a `run` step claimable (it must then be put on the queue). */
export function makesReady(change: StepChange): boolean {
  return change.to === "pending" && change.readyInSeconds !== undefined;
}
