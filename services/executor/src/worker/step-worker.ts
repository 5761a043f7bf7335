import { hostname } from "node:os";
import { join } from "node:path";
import { runLogger } from "@packrun/logging";
import { LeaseWatchdog } from "../lease/lease-watchdog.ts";
import { monotonicMs } from "../lease/monotonic-clock.ts";
import type { StepExecutionRequest } from "../runtime/types.ts";
import { DEFAULT_STEP_DISK_BYTES } from "../runtime/workdir-limit.ts";
import { WorkdirSlots } from "../runtime/workdir-slots.ts";
import { failure, HandBack, LeaseLost, PermanentStepError } from "./attempt-errors.ts";
import { claimWork } from "./claim-work.ts";
import { reportDurably, reportResult } from "./report-result.ts";
import { runAttempt } from "./run-attempt.ts";
import { VerifiedPlans } from "./verified-plans.ts";
import type { WorkItem, WorkOutcome } from "./work-queue.ts";
import type { ResolvedWorkerOptions, StepWorkerOptions, WorkerContext } from "./worker-context.ts";

export type { StepRunner, StepWorkerOptions } from "./worker-context.ts";

/** Output caps of every step unless the worker is configured otherwise; no resource limits. */
export const defaultStepLimits: Readonly<StepExecutionRequest["limits"]> = {
  maxLogBytes: 8 * 1024 * 1024,
  maxLineBytes: 16 * 1024,
};

/**
 * An executor worker: takes items from the queue, claims the step in Postgres (fencing token +
 * lease), runs it, heartbeats while it runs, and records the result only if its claim is
 * still the current one. Any worker can run any ready step. The steps live beside it:
 * `claim-work.ts`, `run-attempt.ts` (with `lease-heartbeat.ts`) and `report-result.ts`.
 */
export class StepWorker implements WorkerContext {
  readonly id: string;
  readonly options: ResolvedWorkerOptions;
  readonly plans = new VerifiedPlans();
  readonly workdirs: WorkdirSlots;
  readonly #inFlight = new Map<string, AbortController>();
  #draining = false;
  #heartbeat: NodeJS.Timeout | undefined;
  readonly #watchdog: LeaseWatchdog;

  constructor(options: StepWorkerOptions) {
    this.id =
      options.workerId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.options = {
      concurrency: 4,
      leaseMs: 15_000,
      tenantConcurrency: 0,
      killGraceMs: 5_000,
      limits: defaultStepLimits,
      ...options,
    };
    this.#watchdog = new LeaseWatchdog(options.logger);
    this.workdirs = new WorkdirSlots({
      root: join(this.options.workRoot, "slots"),
      bytes: this.options.limits.diskBytes ?? DEFAULT_STEP_DISK_BYTES,
      workerId: this.id,
      ...(options.warmWorkdirs === undefined ? {} : { warm: options.warmWorkdirs }),
    });
  }

  /** True once {@link drain} began. */
  draining(): boolean {
    return this.#draining;
  }

  /** Registers the worker and starts taking work. */
  async start(): Promise<void> {
    await this.options.database.query(
      `INSERT INTO workers (id, host, capacity) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), status = 'active', capacity = $3`,
      [this.id, hostname(), this.options.concurrency],
    );
    this.#heartbeat = setInterval(
      () => void this.#reportHealth(),
      Math.min(5_000, this.options.leaseMs / 3),
    );
    this.#heartbeat.unref();
    this.options.queue.consume((item) => this.handle(item), this.options.concurrency);
  }

  async #reportHealth(): Promise<void> {
    await this.options.database
      .query(
        "UPDATE workers SET last_heartbeat_at = now(), in_flight = $2, status = $3 WHERE id = $1",
        [this.id, this.#inFlight.size, this.#draining ? "draining" : "active"],
      )
      .catch((error) => this.options.logger.warn({ err: error }, "worker heartbeat failed"));
  }

  /**
   * Stops claiming; lets in-flight steps finish within `graceMs`, then stops the rest and hands
   * their steps back (they are retried elsewhere without using their retry budget).
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    const stopped = this.options.queue.stopConsuming();
    const timer = setTimeout(() => {
      for (const controller of this.#inFlight.values()) controller.abort(new HandBack());
    }, graceMs);
    await stopped;
    clearTimeout(timer);
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    await this.#watchdog.close();
    await this.workdirs.close();
    await this.options.logs.flush();
    await this.options.database
      .query(
        "UPDATE workers SET status = 'stopped', in_flight = 0, last_heartbeat_at = now() WHERE id = $1",
        [this.id],
      )
      .catch(() => {});
  }

  /** Handles one queue item; exposed for tests. */
  async handle(item: WorkItem): Promise<WorkOutcome> {
    if (this.#draining) return { kind: "later", delayMs: 0 };
    // Read before the claim's query is sent: the lease the database grants ends later than this.
    const claimSentAt = monotonicMs();
    const claim = await claimWork(this, item, !this.plans.has(item.runId));
    if (claim.kind !== "claimed")
      return claim.kind === "later" ? { kind: "later", delayMs: claim.delayMs } : { kind: "done" };
    const { run, step } = claim.claimed;
    const log = runLogger(this.options.logger, {
      runId: run.id,
      stepId: step.step_id,
      attempt: step.attempt,
    });
    const controller = new AbortController();
    const key = `${run.id}/${step.step_id}`;
    this.#inFlight.set(key, controller);
    const lease = this.#watchdog.watch(claimSentAt + this.options.leaseMs, {
      runId: run.id,
      stepId: step.step_id,
      attempt: step.attempt,
    });
    try {
      const result = await runAttempt(this, claim.claimed, controller, log, lease, claimSentAt);
      await this.options.logs.flush(run.id);
      // The lease ran out while the step ran (the event loop stalled): the watchdog killed it,
      // so its failure is the worker's, not the step's; it goes back like a lost lease.
      if (result.outcome !== "succeeded" && lease.expired() && !controller.signal.aborted)
        controller.abort(new LeaseLost());
      // A draining worker stopped the step on purpose: it goes back to the queue, not to retry.
      // A lost lease is handed back too: when the claim is already superseded, fencing discards
      // the result anyway; when the worker gave up on its own (database unreachable longer than
      // the lease), the step goes back to the queue without using its retry budget.
      const handedBack =
        controller.signal.reason instanceof HandBack ||
        controller.signal.reason instanceof LeaseLost;
      await reportDurably(
        this,
        claim.claimed,
        handedBack ? { ...result, handedBack } : result,
        log,
      );
    } catch (error) {
      log.error({ err: error }, "step execution failed inside the worker");
      await reportResult(
        this,
        claim.claimed,
        failure(
          error instanceof PermanentStepError
            ? error.message
            : `worker error: ${error instanceof Error ? error.message : String(error)}`,
          error instanceof PermanentStepError,
        ),
        log,
      ).catch((inner) => log.error({ err: inner }, "could not record the failure"));
    } finally {
      lease.release();
      this.#inFlight.delete(key);
    }
    return { kind: "done" };
  }
}
