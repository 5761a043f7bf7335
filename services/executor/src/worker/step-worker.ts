import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Database, isConnectionError, type Queryable } from "@packrun/db";
import { type Logger, runLogger } from "@packrun/logging";
import {
  canonicalJson,
  computePlanHash,
  containsRuntime,
  ExpressionError,
  type Plan,
  type PlannedRunStep,
  runtimeReferences,
  sharedPlanningPool,
} from "@packrun/planning";
import { LeaseWatchdog, type WatchedAttempt } from "../lease/lease-watchdog.ts";
import { monotonicMs } from "../lease/monotonic-clock.ts";
import type { AttemptEnd } from "../run/attempt-ended.ts";
import { stepTimeoutMs } from "../run/run-deadline.ts";
import { RunScheduler } from "../run/scheduler.ts";
import { loadStepBindings, referencedStepIds } from "../run/step-bindings.ts";
import { applyDeclaredOutputs } from "../run/typed-outputs.ts";
import type {
  ModuleName,
  RuntimeKind,
  StepExecutionRequest,
  StepExecutionResult,
} from "../runtime/types.ts";
import { DEFAULT_STEP_DISK_BYTES } from "../runtime/workdir-limit.ts";
import { WorkdirSlots } from "../runtime/workdir-slots.ts";
import type { SecretVault } from "../secrets/secret-vault.ts";
import { type ClaimedStep as Claimed, claimStep } from "../store/claim-step.ts";
import { flattenPlannedSteps } from "../store/plan-rows.ts";
import type { ReadyWork, StepRow } from "../store/run-rows.ts";
import type { ArtifactUploader } from "./artifact-uploader.ts";
import type { LogWriter } from "./log-writer.ts";
import type { WorkItem, WorkOutcome, WorkQueue } from "./work-queue.ts";

/** Runs one step attempt on this machine (the runtime module's `executeStep`). */
export type StepRunner = (request: StepExecutionRequest) => Promise<StepExecutionResult>;

/** Options for {@link StepWorker}. */
export interface StepWorkerOptions {
  database: Database;
  queue: WorkQueue;
  vault: SecretVault;
  logs: LogWriter;
  logger: Logger;
  runStep: StepRunner;
  /** Where attempt workdirs and run staging areas are created. */
  workRoot: string;
  workerId?: string;
  /** Steps run at once by this worker. */
  concurrency?: number;
  /** A claim is valid this long without a heartbeat. */
  leaseMs?: number;
  /** Running steps of one tenant across all workers; 0 = unlimited. */
  tenantConcurrency?: number;
  killGraceMs?: number;
  limits?: StepExecutionRequest["limits"];
  /** Called with steps that became claimable, to put them on the queue. */
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>;
  /** Called when a run reached a terminal state (secrets cleanup, finalisation). */
  onRunFinished?: (runId: string) => void;
  /** Stores declared artifacts (the evidence service); without it they are hashed only. */
  artifacts?: ArtifactUploader;
  /** Attempt workdirs kept mounted ahead (runtime/workdir-slots.ts); default from the environment. */
  warmWorkdirs?: number;
}

/** Output caps of every step unless the worker is configured otherwise; no resource limits. */
export const defaultStepLimits: Readonly<StepExecutionRequest["limits"]> = {
  maxLogBytes: 8 * 1024 * 1024,
  maxLineBytes: 16 * 1024,
};

/** A result plus how the worker, not the step, ended it. */
type RecordedResult = StepExecutionResult & { permanent?: boolean; handedBack?: boolean };

/** Failures whose cause is in the pack itself: retrying cannot help. */
class PermanentStepError extends Error {}

/** How long a finished step's result is retried while the database is unreachable. */
const RESULT_RETRY_LIMIT_MS = 10 * 60_000;

/**
 * An executor worker: takes items from the queue, claims the step in Postgres (fencing token +
 * lease), runs it, heartbeats while it runs, and records the result only if its claim is
 * still the current one. Any worker can run any ready step.
 */
export class StepWorker {
  readonly id: string;
  readonly #options: Required<
    Omit<StepWorkerOptions, "onRunFinished" | "workerId" | "artifacts" | "warmWorkdirs">
  > &
    Pick<StepWorkerOptions, "onRunFinished" | "artifacts">;
  readonly #inFlight = new Map<string, AbortController>();
  readonly #verifiedPlans = new Map<
    string,
    { hash: string; plan: Plan; steps: Map<string, string> }
  >();
  #draining = false;
  #heartbeat: NodeJS.Timeout | undefined;
  readonly #watchdog: LeaseWatchdog;
  readonly #workdirs: WorkdirSlots;

  constructor(options: StepWorkerOptions) {
    this.id =
      options.workerId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.#options = {
      concurrency: 4,
      leaseMs: 15_000,
      tenantConcurrency: 0,
      killGraceMs: 5_000,
      limits: defaultStepLimits,
      ...options,
    };
    this.#watchdog = new LeaseWatchdog(options.logger);
    this.#workdirs = new WorkdirSlots({
      root: join(this.#options.workRoot, "slots"),
      bytes: this.#options.limits.diskBytes ?? DEFAULT_STEP_DISK_BYTES,
      workerId: this.id,
      ...(options.warmWorkdirs === undefined ? {} : { warm: options.warmWorkdirs }),
    });
  }

  /** Registers the worker and starts taking work. */
  async start(): Promise<void> {
    await this.#options.database.query(
      `INSERT INTO workers (id, host, capacity) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), status = 'active', capacity = $3`,
      [this.id, hostname(), this.#options.concurrency],
    );
    this.#heartbeat = setInterval(
      () => void this.#reportHealth(),
      Math.min(5_000, this.#options.leaseMs / 3),
    );
    this.#heartbeat.unref();
    this.#options.queue.consume((item) => this.handle(item), this.#options.concurrency);
  }

  async #reportHealth(): Promise<void> {
    await this.#options.database
      .query(
        "UPDATE workers SET last_heartbeat_at = now(), in_flight = $2, status = $3 WHERE id = $1",
        [this.id, this.#inFlight.size, this.#draining ? "draining" : "active"],
      )
      .catch((error) => this.#options.logger.warn({ err: error }, "worker heartbeat failed"));
  }

  /**
   * Stops claiming; lets in-flight steps finish within `graceMs`, then stops the rest and hands
   * their steps back (they are retried elsewhere without using their retry budget).
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    const stopped = this.#options.queue.stopConsuming();
    const timer = setTimeout(() => {
      for (const controller of this.#inFlight.values()) controller.abort(new HandBack());
    }, graceMs);
    await stopped;
    clearTimeout(timer);
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    await this.#watchdog.close();
    await this.#workdirs.close();
    await this.#options.logs.flush();
    await this.#options.database
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
    const claim = await this.#claim(item);
    if (claim.kind !== "claimed")
      return claim.kind === "later" ? { kind: "later", delayMs: claim.delayMs } : { kind: "done" };
    const { run, step } = claim.claimed;
    const log = runLogger(this.#options.logger, {
      runId: run.id,
      stepId: step.step_id,
      attempt: step.attempt,
    });
    const controller = new AbortController();
    const key = `${run.id}/${step.step_id}`;
    this.#inFlight.set(key, controller);
    const lease = this.#watchdog.watch(claimSentAt + this.#options.leaseMs, {
      runId: run.id,
      stepId: step.step_id,
      attempt: step.attempt,
    });
    try {
      const result = await this.#execute(claim.claimed, controller, log, lease, claimSentAt);
      await this.#options.logs.flush(run.id);
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
      await this.#completeDurably(
        claim.claimed,
        handedBack ? { ...result, handedBack } : result,
        log,
      );
    } catch (error) {
      log.error({ err: error }, "step execution failed inside the worker");
      await this.#complete(
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

  async #claim(
    item: WorkItem,
  ): Promise<
    { kind: "claimed"; claimed: Claimed } | { kind: "stale" } | { kind: "later"; delayMs: number }
  > {
    const { database, tenantConcurrency } = this.#options;
    if (tenantConcurrency === 0) return this.#claimIn(database, item);
    return database.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
        `packrun.tenant.${item.tenant}`,
      ]);
      const running =
        (
          await tx.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM steps WHERE tenant = $1 AND state = 'running' AND lease_owner IS NOT NULL",
            [item.tenant],
          )
        ).rows[0]?.n ?? 0;
      if (running >= tenantConcurrency) return { kind: "later", delayMs: 200 };
      return this.#claimIn(tx, item);
    });
  }

  async #claimIn(
    db: Queryable,
    item: WorkItem,
  ): Promise<
    { kind: "claimed"; claimed: Claimed } | { kind: "stale" } | { kind: "later"; delayMs: number }
  > {
    const claimed = await claimStep(
      db,
      item,
      this.id,
      this.#options.leaseMs,
      !this.#verifiedPlans.has(item.runId),
    );
    if (claimed !== undefined) return { kind: "claimed", claimed };
    const due = (
      await db.query<{ wait_ms: number }>(
        "SELECT greatest(0, extract(epoch FROM ready_at - now()) * 1000)::float8 AS wait_ms FROM steps WHERE run_id = $1 AND step_id = $2 AND state = 'pending' AND ready_at > now()",
        [item.runId, item.stepId],
      )
    ).rows[0];
    // Early (clocks differ between queue and database): wait until the database says so.
    return due === undefined
      ? { kind: "stale" }
      : { kind: "later", delayMs: Math.ceil(due.wait_ms) + 5 };
  }

  /**
   * Checks, before every attempt, that the stored plan still hashes to the run's planHash (the
   * database hashes the stored text, so only 32 bytes travel per check) and that the step row
   * about to run is the step of that plan. The parsed plan is cached per run, but only reused
   * while the stored text still hashes to planHash: a plan changed after submission is never
   * executed, whichever worker already ran a step of the run.
   */
  async #verifyPlan({ run, step, storedPlanHash, planText }: Claimed): Promise<Plan> {
    const row = { stored_hash: storedPlanHash, plan_hash: run.plan_hash };
    if (row.stored_hash !== row.plan_hash)
      throw new PermanentStepError(
        `plan hash mismatch: the stored plan hashes to ${row.stored_hash} but the run's planHash is ${row.plan_hash}; refusing to execute`,
      );
    let verified = this.#verifiedPlans.get(step.run_id);
    if (verified?.hash !== row.plan_hash) {
      const text =
        planText ??
        (
          await this.#options.database.query<{ plan_json: string }>(
            "SELECT plan_json FROM runs WHERE id = $1",
            [step.run_id],
          )
        ).rows[0]?.plan_json;
      const plan = JSON.parse(text ?? "null") as Plan;
      const actual = computePlanHash(plan);
      if (actual !== row.plan_hash)
        throw new PermanentStepError(
          `plan hash mismatch: the stored plan hashes to ${actual} but the run's planHash is ${row.plan_hash}; refusing to execute`,
        );
      const steps = new Map(
        flattenPlannedSteps(plan.steps).map((entry) => [
          entry.step_id,
          canonicalJson(entry.planned),
        ]),
      );
      verified = { hash: row.plan_hash, plan, steps };
      if (this.#verifiedPlans.size > 1000) this.#verifiedPlans.clear();
      this.#verifiedPlans.set(step.run_id, verified);
    }
    // Children of a map whose items were only known at run time are not in the plan; their
    // definitions come from the plan's template (see docs/state-machine.md).
    const planned = verified.steps.get(step.step_id);
    if (planned !== undefined && planned !== canonicalJson(step.planned))
      throw new PermanentStepError(
        `plan mismatch: the stored definition of step "${step.step_id}" differs from the step in the hashed plan; refusing to execute`,
      );
    return verified.plan;
  }

  async #parameters(
    claimed: Claimed,
    planned: PlannedRunStep,
  ): Promise<{ with: Record<string, unknown>; secrets: Record<string, string> }> {
    const { run, step } = claimed;
    const references = runtimeReferences(planned.run.with);
    let secrets: Record<string, string> = {};
    if (run.secret_names.length > 0) {
      const stored = await this.#options.vault.get(run.id);
      if (stored === undefined)
        throw new PermanentStepError(
          "the run's secrets are no longer available (expired or lost with the queue store); resubmit the run",
        );
      secrets = stored;
    }
    const steps = await loadStepBindings(
      this.#options.database,
      run.id,
      referencedStepIds(references),
    );
    try {
      // Only values left to run time need CEL, and CEL runs off this event loop.
      const resolved = containsRuntime(planned.run.with)
        ? await sharedPlanningPool().resolveRuntimeValues(
            planned.run.with,
            { inputs: run.inputs, steps, secrets, ...step.bindings },
            { text: true },
          )
        : planned.run.with;
      return { with: resolved as Record<string, unknown>, secrets };
    } catch (error) {
      if (error instanceof ExpressionError) throw new PermanentStepError(error.message);
      throw error;
    }
  }

  async #execute(
    claimed: Claimed,
    controller: AbortController,
    log: Logger,
    watched: WatchedAttempt,
    claimSentAt: number,
  ): Promise<StepExecutionResult> {
    const { run, step, fence } = claimed;
    const plan = await this.#verifyPlan(claimed);
    const planned = step.planned as PlannedRunStep;
    const parameters = await this.#parameters(claimed, planned);
    const stagingRoot = join(this.#options.workRoot, "staging", run.id);
    await mkdir(stagingRoot, { recursive: true });
    // A workdir mounted ahead (its own tmpfs on a root worker), used by this attempt only.
    const slot = await this.#workdirs.take();
    const { workdir } = slot;
    let lineNumber = 0;
    // The lease runs from the claim; each successful heartbeat extends it (monotonic clock).
    const lease = { renewedAt: claimSentAt, watched };
    const beat = setInterval(
      () => void this.#extendLease(claimed, controller, log, lease),
      Math.max(200, this.#options.leaseMs / 3),
    );
    const uses = planned.run.uses as ModuleName;
    const runtime: RuntimeKind =
      uses === "builtin:container"
        ? "container"
        : plan.sandbox.mode === "sealed"
          ? "sandbox"
          : "process";
    log.info({ uses, runtime, fence }, "step started");
    try {
      const result = await this.#options.runStep({
        runId: run.id,
        stepId: step.step_id,
        attempt: step.attempt,
        uses,
        with: parameters.with,
        secrets: parameters.secrets,
        workdir,
        stagingRoot,
        sandbox: plan.sandbox,
        runtime,
        timeoutMs: stepTimeoutMs(planned.timeoutSeconds, run.deadline_at),
        killGraceMs: this.#options.killGraceMs,
        limits: this.#options.limits,
        artifacts: planned.run.artifacts,
        signal: controller.signal,
        watch: watched.watch,
        workerId: this.id,
        onLog: (line) => {
          lineNumber++;
          this.#options.logs.append(run, {
            type: `log.${line.stream}`,
            level: line.stream === "stderr" ? "warn" : "info",
            stepId: step.step_id,
            message: line.text,
            metadata: { attempt: step.attempt, line: lineNumber },
            idempotencyKey: `${run.id}/${step.step_id}/${step.attempt}/log/${lineNumber}`,
          });
        },
      });
      const typed = applyDeclaredOutputs(result, planned.run.outputs);
      return await this.#storeArtifacts(claimed, workdir, typed, log);
    } finally {
      clearInterval(beat);
      slot.release();
    }
  }

  /**
   * Puts a succeeded step's artifacts into the evidence store while its workdir still exists.
   * A store that refuses (full, too large, digest changed) fails the step with that reason:
   * no step succeeds with an artifact the evidence cannot prove.
   */
  async #storeArtifacts(
    claimed: Claimed,
    workdir: string,
    result: StepExecutionResult,
    log: Logger,
  ): Promise<StepExecutionResult> {
    const uploader = this.#options.artifacts;
    if (uploader === undefined || result.outcome !== "succeeded" || result.artifacts.length === 0)
      return result;
    try {
      for (const artifact of result.artifacts) {
        await uploader.upload({
          tenant: claimed.run.tenant,
          runId: claimed.run.id,
          stepId: claimed.step.step_id,
          name: artifact.name,
          sourcePath: artifact.path,
          filePath: join(workdir, artifact.path),
          workdir,
          digest: artifact.digest,
        });
      }
      return result;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      log.warn({ reason }, "artifact upload failed; failing the step");
      return { ...result, outcome: "failed", reason };
    }
  }

  /** Extends the lease; aborts the step when the claim is gone or the run was cancelled. */
  async #extendLease(
    claimed: Claimed,
    controller: AbortController,
    log: Logger,
    lease: { renewedAt: number; watched: WatchedAttempt },
  ): Promise<void> {
    if (controller.signal.aborted) return;
    const attemptedAt = monotonicMs();
    // Cut off from the database for longer than the lease (heartbeats failing, or hanging on a
    // connection that no longer answers): the reconciler may already have given the step to
    // another worker, so this copy must not keep running, and acting, beside it.
    if (attemptedAt - lease.renewedAt >= this.#options.leaseMs) {
      log.warn(
        "lease expired without a successful heartbeat (database unreachable); stopping the step",
      );
      controller.abort(new LeaseLost());
      return;
    }
    try {
      const row = (
        await this.#options.database.query<{ run_state: string }>(
          `UPDATE steps s SET lease_expires_at = now() + make_interval(secs => $4)
          FROM runs r WHERE s.run_id = $1 AND s.step_id = $2 AND s.fence = $3 AND s.state = 'running' AND r.id = s.run_id
          RETURNING r.state AS run_state`,
          [claimed.run.id, claimed.step.step_id, claimed.fence, this.#options.leaseMs / 1000],
        )
      ).rows[0];
      if (row === undefined) {
        log.warn("lease lost (another worker took the step over); stopping it");
        controller.abort(new LeaseLost());
      } else if (
        row.run_state === "cancelled" ||
        row.run_state === "failed" ||
        row.run_state === "timed_out"
      ) {
        log.info({ runState: row.run_state }, "run ended; stopping the step");
        controller.abort(new RunEnded());
      } else {
        lease.renewedAt = attemptedAt;
        lease.watched.renew(attemptedAt + this.#options.leaseMs);
      }
    } catch (error) {
      log.warn({ err: error }, "lease heartbeat failed; will retry");
    }
  }

  /**
   * Records the attempt's result, retrying while the database is unreachable: the step has run,
   * and a result lost here would make it run again once its lease expired. The reconciler leaves
   * expired leases alone for a grace period after an outage, so this retry gets there first.
   * Gives up when the worker drains or after {@link RESULT_RETRY_LIMIT_MS}.
   */
  async #completeDurably(claimed: Claimed, result: RecordedResult, log: Logger): Promise<void> {
    const started = performance.now();
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        await this.#complete(claimed, result, log);
        return;
      } catch (error) {
        const elapsed = performance.now() - started;
        if (!isConnectionError(error) || this.#draining || elapsed > RESULT_RETRY_LIMIT_MS)
          throw error;
        log.warn(
          { err: error, retryInMs: delay },
          "cannot record the step's result (database unreachable); retrying",
        );
        await sleep(delay);
      }
    }
  }

  async #complete(claimed: Claimed, result: RecordedResult, log: Logger): Promise<void> {
    const outcome = await this.#options.database.transaction(async (tx) => {
      const locked = await RunScheduler.lockForClaim(
        tx,
        {
          runId: claimed.run.id,
          stepId: claimed.step.step_id,
          fence: claimed.fence,
          owner: this.id,
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
      return this.#record(tx, locked.scheduler, claimed.step, result);
    });
    if (outcome === "fenced") {
      log.warn(
        { fence: claimed.fence },
        "result discarded: this worker's claim was superseded (fencing)",
      );
      return;
    }
    if (outcome === "gone") return;
    await this.#options.enqueue(outcome.ready);
    if (outcome.finished) this.#options.onRunFinished?.(claimed.run.id);
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
  async #record(
    tx: Queryable,
    scheduler: RunScheduler,
    step: StepRow,
    result: RecordedResult,
  ): Promise<{ ready: ReadyWork[]; finished: boolean; state: string }> {
    const decided = await scheduler.decide(step, {
      type: "attempt-ended",
      fence: step.fence,
      owner: this.id,
      end: attemptEnd(result),
    });
    if (decided.deadLetter !== undefined) {
      await tx.query(
        "INSERT INTO dead_letters (run_id, step_id, attempt, reason) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [step.run_id, step.step_id, step.attempt, decided.deadLetter],
      );
      await this.#options.queue
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

class LeaseLost extends Error {}
class RunEnded extends Error {}
class HandBack extends Error {}

function failure(reason: string, permanent: boolean): RecordedResult {
  return {
    outcome: "failed",
    exitCode: null,
    signal: null,
    reason,
    durationMs: 0,
    cpuMicros: 0,
    peakMemoryBytes: 0,
    outputs: {},
    artifacts: [],
    logTruncated: false,
    permanent,
  };
}
