import type { Queryable, Transaction } from "@packrun/db";
import { outboxParameterValues, type RunEvent, recordEvents } from "../store/run-events.ts";
import type { ReadyWork, RunRow, StepRow } from "../store/run-rows.ts";
import * as runStore from "../store/run-store.ts";
import { updateStep, updateStepAndReadyNext } from "../store/step-store.ts";
import { activateStep } from "./activate-step.ts";
import { progressBlock } from "./block-progress.ts";
import { type StepEvent, stepTransition } from "./life-cycle.ts";
import { endRun, failRun, finishRun } from "./run-end.ts";
import {
  assertRunTransition,
  assertStepTransition,
  failedStepStates,
  type RunState,
  terminalRunStates,
  terminalStepStates,
} from "./state-machine.ts";
import { makesReady, type StepChange } from "./step-change.ts";
import { stepEvent, stepFailureReason } from "./step-event.ts";

export { stepEvent } from "./step-event.ts";

/** How a step attempt ended, as its `step_attempts` row records it. */
export interface AttemptEnd {
  state: string;
  exitCode: number | null;
  reason: string;
  cpuMicros: number;
  peakMemoryBytes: number;
  /** Container steps: the image that ran, by reference and resolved digest. */
  image?: { reference: string; digest: string };
}

/** The reason a run ends `timed_out` with. */
export function runDeadlineReason(timeoutSeconds: number): string {
  return `run deadline of ${timeoutSeconds}s passed`;
}

/**
 * A run transaction: holds the run's row lock (so transitions of a run are serialised), applies
 * the life cycle's decisions (`run/`) through the store's statements (`store/`), and collects
 * the steps that became claimable in {@link ready} (the caller queues them after the commit)
 * and the run's events (written to the outbox in one statement just before COMMIT, or by the
 * run's start or a step's end, whose statements carry the events decided so far and their own).
 */
export class RunScheduler {
  readonly ready: ReadyWork[] = [];
  /** Set when the run reached a terminal state in this transaction. */
  finishedState: RunState | undefined;
  /** Set when the run settled (terminal event recorded) in this transaction. */
  settled = false;
  readonly tx: Queryable;
  run: RunRow;
  readonly #pendingEvents: RunEvent[] = [];
  /** Bumped by every write that can change what {@link syncRunState} decides. */
  #changes = 0;
  #syncedAt = -1;
  readonly #planParts = new Map<string, unknown>();

  private constructor(tx: Transaction, run: RunRow) {
    this.tx = tx;
    this.run = run;
    tx.beforeCommit(async () => {
      const events = this.#pendingEvents.splice(0);
      await recordEvents(tx, this.run, events);
    });
  }

  /** Locks the run row; undefined when the run does not exist (or not in this tenant). */
  static async lock(
    tx: Transaction,
    runId: string,
    tenant?: string,
  ): Promise<RunScheduler | undefined> {
    const run = (await tx.query<RunRow>(runStore.lockRun, [runId, tenant ?? null])).rows[0];
    return run === undefined ? undefined : new RunScheduler(tx, run);
  }

  /** The scheduler of a run this transaction inserted (no other transaction can see it yet). */
  static forInserted(tx: Transaction, run: RunRow): RunScheduler {
    return new RunScheduler(tx, run);
  }

  /**
   * Locks the run row of a step a worker is running and says, in the same round trip, whether
   * the worker's claim (fence and lease owner) is still the current one, closing the attempt's
   * row when it is. Stable for the rest of the transaction: a claim is only superseded under
   * the run's lock, and a running step cannot be claimed.
   */
  static async lockForClaim(
    tx: Transaction,
    claim: { runId: string; stepId: string; fence: number; owner: string; attempt: number },
    ended: AttemptEnd,
  ): Promise<{ scheduler: RunScheduler; holdsClaim: boolean } | undefined> {
    const row = (
      await tx.query<RunRow & { holds_claim: boolean }>(runStore.lockRunForReport, [
        claim.runId,
        claim.stepId,
        claim.fence,
        claim.owner,
        claim.attempt,
        ended.state,
        ended.exitCode,
        ended.reason,
        ended.cpuMicros,
        ended.peakMemoryBytes,
        ended.image?.reference ?? null,
        ended.image?.digest ?? null,
      ])
    ).rows[0];
    if (row === undefined) return undefined;
    const { holds_claim: holdsClaim, ...run } = row;
    return { scheduler: new RunScheduler(tx, run), holdsClaim };
  }

  /**
   * Records events in the outbox with this run's identity, in order, when the transaction
   * commits (one statement for all of them): an event exists exactly when its transition does.
   */
  async events(events: readonly RunEvent[]): Promise<void> {
    this.#pendingEvents.push(...events);
  }

  async step(stepId: string): Promise<StepRow | undefined> {
    return (await this.tx.query<StepRow>(runStore.selectStep, [this.run.id, stepId])).rows[0];
  }

  /** A part of the run's plan (`approvals`, `policies`, `outputs`), read once per transaction. */
  async planPart<T>(part: "approvals" | "policies" | "outputs"): Promise<T | undefined> {
    if (!this.#planParts.has(part)) {
      const row = (await this.tx.query<{ part: T }>(runStore.planPart, [this.run.id, part]))
        .rows[0];
      this.#planParts.set(part, row?.part ?? undefined);
    }
    return this.#planParts.get(part) as T | undefined;
  }

  /**
   * Applies one change the life cycle decided to `step`, only if the step is still in
   * `step.state` (the state machine is checked here and by a trigger); records its event and,
   * when it makes a `run` step claimable, queues it. Undefined when the step had moved on.
   */
  async apply(step: StepRow, change: StepChange): Promise<StepRow | undefined> {
    assertStepTransition(step.step_id, step.state, change.to);
    const updated = await updateStep(this.tx, step, change);
    if (updated === undefined) return undefined;
    this.#changes++;
    const ready = step.state === "pending" && change.to === "pending" ? "ready" : undefined;
    await this.events([stepEvent(updated, step.state, ready)]);
    if (makesReady(change) && updated.kind === "run") this.#queue(updated, change);
    return updated;
  }

  /**
   * {@link apply} for a top-level step that succeeds or is skipped, making the next top-level
   * step claimable in the same statement when it is a plain `run` step. `advanced` says the
   * run moved on that way (nothing else to propagate).
   */
  async #applyAndAdvance(
    step: StepRow,
    change: StepChange,
  ): Promise<{ row: StepRow | undefined; advanced: boolean }> {
    assertStepTransition(step.step_id, step.state, change.to);
    const runGoesOn = !terminalRunStates.has(this.run.state);
    // A running run without declared outputs ends with nothing to evaluate: in the same statement.
    const finishIfLast = this.run.state === "running" && !this.run.has_outputs;
    // The statement writes the events so far and its own (the step's, the next step's
    // `step.ready`, the run's terminal one when it settled) as the transaction's outbox row.
    const { done, next, last, runEnded } = await updateStepAndReadyNext(
      this.tx,
      step,
      change,
      runGoesOn,
      finishIfLast,
      {
        run: this.run,
        known: this.#pendingEvents.splice(0),
        settled: runSettledEvent(this.run.id, "succeeded", ""),
      },
    );
    if (done === undefined) return { row: undefined, advanced: false };
    this.#changes++;
    if (last) {
      if (runEnded === undefined) await this.finishRun("succeeded", "");
      else this.#succeeded(runEnded.settled);
      return { row: done, advanced: true };
    }
    if (next === undefined) return { row: done, advanced: false };
    this.#queue(next, { to: "pending", readyInSeconds: 0 });
    return { row: done, advanced: true };
  }

  /**
   * Takes note of the run's success that a step's statement applied (see `finishRun`), with
   * its terminal event when it settled (the statement recorded it).
   */
  #succeeded(settled: boolean): void {
    assertRunTransition(this.run.id, this.run.state, "succeeded");
    this.run = { ...this.run, state: "succeeded", reason: "" };
    this.finishedState = "succeeded";
    if (settled) this.settled = true;
  }

  #queue(step: StepRow, change: StepChange): void {
    this.ready.push({
      runId: this.run.id,
      stepId: step.step_id,
      tenant: this.run.tenant,
      priority: this.run.priority,
      attempt: step.attempt,
      delayMs: (change.readyInSeconds ?? 0) * 1000,
    });
  }

  /** Queues `run` steps a bulk statement made claimable now (see `readyRunSteps`). */
  queueReady(steps: readonly StepRow[]): void {
    this.#changes++;
    for (const step of steps) this.#queue(step, { to: "pending", readyInSeconds: 0 });
  }

  /** Counts a bulk write that can change what {@link syncRunState} decides. */
  changed(): void {
    this.#changes++;
  }

  /**
   * Feeds one event to the step's life cycle ({@link stepTransition}) and applies what it
   * decides; a step that ends propagates (blocks, the run). Returns the decision and the row
   * as it ends up (undefined when the event changed nothing).
   */
  async decide(
    step: StepRow,
    event: StepEvent,
  ): Promise<{ row: StepRow | undefined; deadLetter?: string; ignored?: string }> {
    const decision = stepTransition(this.run, step, event);
    if (decision.kind === "ignored") return { row: undefined, ignored: decision.why };
    let row: StepRow | undefined = step;
    let advanced = false;
    for (const change of decision.changes) {
      if (row === undefined) break;
      if (row.parent_id === null && (change.to === "succeeded" || change.to === "skipped")) {
        ({ row, advanced } = await this.#applyAndAdvance(row, change));
      } else row = await this.apply(row, change);
    }
    if (row !== undefined && terminalStepStates.has(row.state) && !advanced)
      await this.stepFinished(row);
    await this.syncRunState();
    return {
      row: row === step ? undefined : row,
      ...(decision.deadLetter === undefined ? {} : { deadLetter: decision.deadLetter }),
    };
  }

  /** Starts a queued run: activates its first step. */
  async startRun(): Promise<void> {
    if (this.run.state !== "queued") return;
    assertRunTransition(this.run.id, this.run.state, "running");
    const from = this.run.state;
    // The statement writes the events so far, the run's start and the first step's
    // `step.ready` as the transaction's outbox row.
    const known = [
      ...this.#pendingEvents.splice(0),
      runStateEvent(this.run.id, from, "running", ""),
    ];
    const row = (
      await this.tx.query<
        Omit<StepRow, "run_id"> & { run_id: string | null; run_deadline_at: Date | null }
      >(runStore.startRunAndReadyFirst, [this.run.id, ...outboxParameterValues(this.run, known)])
    ).rows[0];
    this.run = {
      ...this.run,
      state: "running",
      reason: "",
      waiting_reason: "",
      deadline_at: row?.run_deadline_at ?? this.run.deadline_at,
    };
    const { run_deadline_at: _deadline, ...first } = row ?? { run_id: null };
    await this.advanceTopLevel(-1, first.run_id === null ? null : (first as StepRow), true);
    await this.syncRunState();
  }

  /**
   * Propagates a step that just reached a terminal state: up through the blocks it closes,
   * then along the top-level sequence.
   */
  async stepFinished(step: StepRow): Promise<void> {
    let current: StepRow | undefined = step;
    // Blocks are closed even after the run ended (e.g. cancelled while children ran).
    while (current !== undefined && current.parent_id !== null)
      current = await this.progressContainer(current.parent_id);
    if (current !== undefined && !terminalRunStates.has(this.run.state)) {
      if (failedStepStates.has(current.state)) await this.failRun(stepFailureReason(current));
      else await this.advanceTopLevel(current.position);
    }
    await this.syncRunState();
    await this.settle();
  }

  /**
   * Records the run's terminal event once the run is terminal and no step runs any more (a
   * cancelled run's steps may still be stopping): the evidence log accepts nothing after it.
   */
  async settle(): Promise<void> {
    if (!terminalRunStates.has(this.run.state)) return;
    if (this.settled) return;
    const settled = await this.tx.query(runStore.settleRun, [this.run.id]);
    if (settled.rowCount === 0) return;
    await this.recordSettled();
  }

  /** Records the terminal event of a run that just settled (see {@link settle}). */
  async recordSettled(): Promise<void> {
    await this.events([runSettledEvent(this.run.id, this.run.state, this.run.reason)]);
    this.settled = true;
  }

  /**
   * Activates top-level steps after `position` until one keeps running or the run ends.
   * `nextReadied`: the caller already tried to ready the next step in its own statement (the
   * step it readied, or null for none); `readyRecorded`: that statement recorded its event.
   */
  private async advanceTopLevel(
    position: number,
    nextReadied?: StepRow | null,
    readyRecorded = false,
  ): Promise<void> {
    for (let next = position + 1; !terminalRunStates.has(this.run.state); next++) {
      // A plain `run` step is reached in one statement; any other is read, then activated.
      const readied =
        next === position + 1 && nextReadied !== undefined
          ? (nextReadied ?? undefined)
          : (await this.tx.query<StepRow>(runStore.readyPlainTopLevelStep, [this.run.id, next]))
              .rows[0];
      if (readied !== undefined) {
        this.#changes++;
        const recorded = readyRecorded && next === position + 1;
        if (!recorded) await this.events([stepEvent(readied, "pending", "ready")]);
        this.#queue(readied, { to: "pending", readyInSeconds: 0 });
        return;
      }
      const row = (await this.tx.query<StepRow>(runStore.topLevelStep, [this.run.id, next]))
        .rows[0];
      if (row === undefined) return this.finishRun("succeeded", "");
      const done = await this.activate(row);
      if (done === undefined) return;
      if (failedStepStates.has(done.state)) return this.failRun(stepFailureReason(done));
    }
  }

  /**
   * Reaches a pending step. Returns the step when it finished immediately (skipped, failed,
   * decided gate, empty block); undefined when it is now running, queued or awaiting a decision.
   */
  activate(step: StepRow): Promise<StepRow | undefined> {
    return activateStep(this, step);
  }

  /**
   * Starts further children of a running parallel/map step within its maxParallel, and
   * finishes it when no child is left. Returns the container when it finished.
   */
  progressContainer(containerId: string): Promise<StepRow | undefined> {
    return progressBlock(this, containerId);
  }

  /** Fails the run: the remaining not-started steps are skipped; running ones finish on their own. */
  failRun(reason: string): Promise<void> {
    return failRun(this, reason);
  }

  /** True when the run has a deadline and it passed (database clock). */
  async deadlinePassed(): Promise<boolean> {
    const row = (
      await this.tx.query<{ passed: boolean | null }>(runStore.deadlinePassed, [this.run.id])
    ).rows[0];
    return row?.passed === true;
  }

  /**
   * Ends the run: steps not started yet become `notStarted` (skipped on failure, cancelled on
   * cancel), blocks with nothing left running are closed; running steps finish on their own
   * (their workers see the run state and stop).
   */
  endRun(
    state: "failed" | "cancelled" | "timed_out",
    reason: string,
    notStarted: "skipped" | "cancelled",
  ): Promise<void> {
    return endRun(this, state, reason, notStarted);
  }

  /** Moves the run to a terminal state, computes its outputs and settles it when it can. */
  finishRun(
    state: "succeeded" | "failed" | "cancelled" | "timed_out",
    reason: string,
  ): Promise<void> {
    return finishRun(this, state, reason);
  }

  /** Moves the run to a non-terminal state, with its event. */
  async setRunState(to: "running" | "awaiting-approval", reason: string): Promise<void> {
    if (this.run.state === to) return;
    assertRunTransition(this.run.id, this.run.state, to);
    const from = this.run.state;
    await this.tx.query(runStore.setRunState, [this.run.id, to, reason]);
    this.run = { ...this.run, state: to, reason };
    await this.events([runStateEvent(this.run.id, from, to, reason)]);
  }

  /** running ⇄ awaiting-approval: the run waits when a gate waits and nothing else can move. */
  async syncRunState(): Promise<void> {
    if (this.run.state !== "running" && this.run.state !== "awaiting-approval") return;
    // Only a gate makes a run wait, and only declared approvals make gates.
    if (!this.run.has_approvals && this.run.state === "running") return;
    // Nothing moved since the last check in this transaction: the answer is the same.
    if (this.#syncedAt === this.#changes) return;
    this.#syncedAt = this.#changes;
    const result = await this.tx.query<{ waiting: boolean; moving: boolean }>(
      runStore.waitingAndMoving,
      [this.run.id],
    );
    const { waiting, moving } = result.rows[0] ?? { waiting: false, moving: false };
    const to = waiting && !moving ? "awaiting-approval" : "running";
    if (this.run.state === to) return;
    assertRunTransition(this.run.id, this.run.state, to);
    await this.tx.query(runStore.setRunState, [this.run.id, to, this.run.reason]);
    this.run = { ...this.run, state: to };
    await this.events([
      {
        type: `run.${to}`,
        level: "info",
        message: `run ${to}`,
        idempotencyKey: `${this.run.id}/run/${to}/${Date.now()}-${Math.random().toString(36).slice(2)}`,
      },
    ]);
  }
}

/** The terminal event of a run that settled in `state` with `reason`. */
function runSettledEvent(runId: string, state: RunState, reason: string): RunEvent {
  return {
    type: `run.${state}`,
    level: state === "failed" || state === "timed_out" ? "error" : "info",
    message: reason || `run ${state}`,
    metadata: { state },
    idempotencyKey: `${runId}/run/${state}`,
  };
}

function runStateEvent(runId: string, from: RunState, to: RunState, reason: string): RunEvent {
  return {
    type: `run.${to}`,
    level: to === "failed" ? "error" : "info",
    message: reason || `run ${to}`,
    metadata: { from, to },
    idempotencyKey: `${runId}/run/${to}`,
  };
}
