import { Worker } from "node:worker_threads";
import type { Logger } from "@packrun/logging";
import type { KillTarget, StepWatch } from "../runtime/types.ts";
import { monotonicMs } from "./monotonic-clock.ts";
import type { WatchdogCommand, WatchdogReport } from "./watchdog-messages.ts";

/** One watched attempt: renew its lease, hand it to the runtime, release it at the end. */
export interface WatchedAttempt {
  /** The lease now holds until `deadline` (monotonic ms, see monotonicMs). */
  renew(deadline: number): void;
  /** The lease's deadline has passed (so the watchdog has killed, or is killing, the step). */
  expired(): boolean;
  /** What the runtime registers its processes and containers with. */
  readonly watch: StepWatch;
  /** The attempt is over; nothing of it is killed any more. */
  release(): void;
}

/**
 * Kills a step whose lease ran out, even while the worker's event loop is frozen.
 *
 * A worker renews the lease of every running step with heartbeats from its main thread. When
 * that thread stops turning (a long synchronous evaluation, a GC storm, a blocked `spawn`), the
 * heartbeats stop, the reconciler hands the step to another worker once the lease expires, and
 * without this the frozen worker's copy would go on running beside the new one: the same step
 * twice at once. The watchdog is a thread with its own event loop: it holds each attempt's lease
 * deadline, which only the main thread's successful heartbeats move forward, and SIGKILLs the
 * attempt's processes (or runs `podman kill` for its container) the moment the deadline passes.
 * Deadlines are taken before the heartbeat's query is sent, so they never lie after the
 * database's own expiry.
 */
export class LeaseWatchdog {
  readonly #logger: Logger;
  #thread: Worker | null = null;
  #nextId = 1;
  readonly #labels = new Map<number, Record<string, unknown>>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Starts watching an attempt whose lease holds until `deadline` (monotonic ms). `labels` go into
   * the log line written when the watchdog fires (run and step ids).
   */
  watch(deadline: number, labels: Record<string, unknown>): WatchedAttempt {
    const id = this.#nextId++;
    this.#labels.set(id, labels);
    this.#send({ type: "watch", id, deadline });
    let released = false;
    let nextTarget = 1;
    let current = deadline;
    return {
      renew: (next) => {
        current = Math.max(current, next);
        if (!released) this.#send({ type: "renew", id, deadline: next });
      },
      expired: () => monotonicMs() >= current,
      watch: {
        track: (kill: KillTarget) => {
          const target = nextTarget++;
          if (!released) this.#send({ type: "track", id, target, kill });
          return () => {
            if (!released) this.#send({ type: "untrack", id, target });
          };
        },
      },
      release: () => {
        if (released) return;
        released = true;
        this.#labels.delete(id);
        this.#send({ type: "release", id });
      },
    };
  }

  /** Stops the thread (after the worker drained: nothing is watched any more). */
  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = null;
    if (thread) await thread.terminate();
  }

  #send(command: WatchdogCommand): void {
    this.#ensureThread().postMessage(command);
  }

  #ensureThread(): Worker {
    if (this.#thread) return this.#thread;
    const thread = new Worker(new URL("./watchdog-thread.ts", import.meta.url));
    // Watching never keeps the process alive on its own.
    thread.unref();
    thread.on("message", (report: WatchdogReport) => {
      const labels = this.#labels.get(report.id) ?? {};
      this.#logger.error(
        { ...labels, overdueMs: report.overdueMs, killed: report.killed },
        "lease ran out without a heartbeat (the worker's event loop stalled); the watchdog killed the step so it never runs beside its replacement",
      );
    });
    thread.on("error", (error) => {
      // Without its thread a worker must not run steps unguarded: the next watch starts a new one.
      this.#logger.error({ err: error }, "lease watchdog thread failed; restarting it");
      if (this.#thread === thread) this.#thread = null;
    });
    this.#thread = thread;
    return thread;
  }
}
