import type { RunRow, StepRow } from "../store/run-rows.ts";
import { type AttemptEnd, onAttemptEnded } from "./attempt-ended.ts";
import { type ApprovalDecided, gateExpiredChange, onApprovalDecided } from "./gates.ts";
import { isLegalStepTransition, terminalRunStates } from "./state-machine.ts";
import type { StepChange } from "./step-change.ts";

/** Something that happens to one step of a run. */
export type StepEvent =
  /** A worker reports how its attempt ended; it counts only while its claim is current. */
  | {
      type: "attempt-ended";
      fence: number;
      owner: string;
      end: Exclude<AttemptEnd, { kind: "lost" }>;
    }
  /** The step's lease (of claim `fence`) expired: its worker is taken to be lost. */
  | { type: "lease-expired"; fence: number; maxLostAttempts: number }
  /** A decision on an approval gate was recorded. */
  | ({ type: "approval-decided" } & ApprovalDecided)
  /** The gate's approval request expired. */
  | { type: "gate-expired" }
  /** The run ended (failed, cancelled, timed out) before the step started. */
  | { type: "run-ended"; notStarted: "skipped" | "cancelled"; reason: string };

/** What an event does to a step: the changes in order, or why it does nothing. */
export type StepTransition =
  | { kind: "changed"; changes: StepChange[]; deadLetter?: string }
  | { kind: "ignored"; why: string };

const ignored = (why: string): StepTransition => ({ kind: "ignored", why });

/** What the life cycle reads of a step. */
export type LifeCycleStep = Pick<
  StepRow,
  | "state"
  | "fence"
  | "lease_owner"
  | "attempt"
  | "failed_attempts"
  | "lost_attempts"
  | "max_attempts"
  | "planned"
>;

/**
 * The step life cycle as one pure function `(run, step, event) → changes`: every decision about
 * a step after it was made claimable goes through here (the step worker's report, the
 * reconciler's lost leases and expired gates, approval decisions, the end of a run). Fencing is
 * decided here too: a report whose claim (fence and owner) is not the step's current one, or a
 * lease expiry for a superseded claim, changes nothing. Every change is legal by the state machine.
 */
export function stepTransition(
  run: Pick<RunRow, "state">,
  step: LifeCycleStep,
  event: StepEvent,
  random: () => number = Math.random,
): StepTransition {
  const result = decide(run, step, event, random);
  if (result.kind === "changed") {
    let from = step.state;
    for (const change of result.changes) {
      if (!isLegalStepTransition(from, change.to))
        throw new Error(`life cycle produced an illegal step transition ${from} -> ${change.to}`);
      from = change.to;
    }
  }
  return result;
}

function decide(
  run: Pick<RunRow, "state">,
  step: Parameters<typeof stepTransition>[1],
  event: StepEvent,
  random: () => number,
): StepTransition {
  switch (event.type) {
    case "attempt-ended": {
      if (
        step.state !== "running" ||
        step.fence !== event.fence ||
        step.lease_owner !== event.owner
      )
        return ignored("fenced: the claim was superseded");
      const decision = onAttemptEnded(run, step, event.end, random);
      return {
        kind: "changed",
        changes: [decision.change],
        ...(decision.deadLetter === undefined ? {} : { deadLetter: decision.deadLetter }),
      };
    }
    case "lease-expired": {
      if (step.state !== "running" || step.fence !== event.fence || step.lease_owner === null)
        return ignored("the lease was already taken back or renewed under a new claim");
      const decision = onAttemptEnded(
        run,
        step,
        { kind: "lost", owner: step.lease_owner, maxLostAttempts: event.maxLostAttempts },
        random,
      );
      return { kind: "changed", changes: [decision.change] };
    }
    case "approval-decided": {
      if (step.state !== "awaiting-approval") return ignored(`the gate is ${step.state}`);
      if (terminalRunStates.has(run.state)) return ignored(`the run is ${run.state}`);
      return { kind: "changed", changes: onApprovalDecided(event) };
    }
    case "gate-expired":
      return step.state === "awaiting-approval"
        ? { kind: "changed", changes: [gateExpiredChange] }
        : ignored(`the gate is ${step.state}`);
    case "run-ended":
      // Running steps finish on their own: their workers see the run state and stop.
      if (step.state === "pending")
        return { kind: "changed", changes: [runEndedChange(event.notStarted, event.reason)] };
      if (step.state === "awaiting-approval")
        return { kind: "changed", changes: [runEndedChange("cancelled", event.reason)] };
      return ignored(`the step is ${step.state}`);
  }
}

/** A step the run's end caught before it started (the store applies it to all at once). */
export function runEndedChange(to: "skipped" | "cancelled", reason: string): StepChange {
  return { to, finished: true, reason };
}
