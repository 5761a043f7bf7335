import type { KillTarget } from "../runtime/types.ts";

/** What the worker's main thread tells its lease watchdog thread. */
export type WatchdogCommand =
  /** Watch a new attempt: kill its targets once `deadline` (monotonic ms) has passed. */
  | { type: "watch"; id: number; deadline: number }
  /** The attempt's lease was renewed until `deadline`. */
  | { type: "renew"; id: number; deadline: number }
  /** Kill this too when the attempt's lease runs out. */
  | { type: "track"; id: number; target: number; kill: KillTarget }
  /** The target ended by itself (its pid may be reused now). */
  | { type: "untrack"; id: number; target: number }
  /** The attempt ended: stop watching it. */
  | { type: "release"; id: number };

/** What the watchdog thread reports back. */
export interface WatchdogReport {
  type: "fired";
  id: number;
  /** How late the main thread was: now minus the deadline, in ms. */
  overdueMs: number;
  /** One line per target: what was killed and how that went. */
  killed: string[];
}
