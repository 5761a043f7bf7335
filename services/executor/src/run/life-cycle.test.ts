import assert from "node:assert/strict";
import type { PlannedStep } from "@packrun/planning";
import fc from "fast-check";
import { describe, test } from "vitest";
import type { RunRow } from "../store/run-rows.ts";
import { type LifeCycleStep, type StepEvent, stepTransition } from "./life-cycle.ts";
import {
  failedStepStates,
  isLegalStepTransition,
  type RunState,
  type StepState,
  terminalRunStates,
  terminalStepStates,
} from "./state-machine.ts";
import type { StepChange } from "./step-change.ts";

// A model of one run of sequential top-level steps (some of them approval gates) driven by
// random event sequences through the life-cycle module. The model stores what the store would
// (state, fence, lease, counters) and runs the run-level rule of RunScheduler (a failed step
// fails the run and ends the steps not started; the last success succeeds it).

type ModelStep = LifeCycleStep & {
  gate: boolean;
  ready: boolean;
  approvers: Set<string>;
  approvals: number;
  rejections: number;
  successes: number;
};

interface Model {
  run: Pick<RunRow, "state">;
  steps: ModelStep[];
}

const maxLostAttempts = 2;
const workers = ["w1", "w2", "w3"];

function newModel(kinds: readonly ("run" | "gate")[], maxAttempts: number): Model {
  const planned = {
    failure: {
      maxAttempts,
      backoff: "fixed",
      backoffSeconds: 1,
      maxBackoffSeconds: null,
      jitter: 0.5,
    },
  } as unknown as PlannedStep;
  const steps = kinds.map(
    (kind): ModelStep => ({
      state: "pending",
      fence: 0,
      lease_owner: null,
      attempt: 0,
      failed_attempts: 0,
      lost_attempts: 0,
      max_attempts: maxAttempts,
      planned,
      gate: kind === "gate",
      ready: false,
      approvers: new Set(),
      approvals: 0,
      rejections: 0,
      successes: 0,
    }),
  );
  const model: Model = { run: { state: "running" }, steps };
  activate(model, 0);
  return model;
}

/** Reaches top-level step `index` (what activation does), or ends the run after the last. */
function activate(model: Model, index: number): void {
  const step = model.steps[index];
  if (step === undefined) {
    model.run.state = "succeeded";
    return;
  }
  if (step.gate) step.state = "awaiting-approval";
  else step.ready = true;
}

function apply(step: ModelStep, change: StepChange): void {
  assert.ok(isLegalStepTransition(step.state, change.to), `${step.state} -> ${change.to}`);
  step.state = change.to;
  if (change.to === "succeeded") step.successes++;
  if (change.failedAttempts !== undefined) step.failed_attempts = change.failedAttempts;
  if (change.lostAttempts !== undefined) step.lost_attempts = change.lostAttempts;
  if (change.newFence === true) step.fence++;
  if (change.releaseLease === true) step.lease_owner = null;
  step.ready = change.to === "pending" && change.readyInSeconds !== undefined;
}

/** The run-level rule after a top-level step ended. */
function stepEnded(model: Model, index: number): void {
  const step = model.steps[index] as ModelStep;
  if (terminalRunStates.has(model.run.state)) return;
  if (failedStepStates.has(step.state)) endRun(model, "failed", "skipped");
  else activate(model, index + 1);
}

function endRun(model: Model, state: RunState, notStarted: "skipped" | "cancelled"): void {
  model.run.state = state;
  for (const step of model.steps) {
    const decided = stepTransition(model.run, step, { type: "run-ended", notStarted, reason: "" });
    if (decided.kind === "changed") for (const change of decided.changes) apply(step, change);
  }
}

type Action =
  | { kind: "claim"; step: number; worker: number }
  | {
      kind: "report";
      step: number;
      worker: number;
      staleBy: number;
      outcome: "succeeded" | "failed" | "timed_out" | "cancelled";
      permanent: boolean;
      handedBack: boolean;
    }
  | { kind: "expire"; step: number; staleBy: number }
  | { kind: "decide"; step: number; approver: number; approve: boolean }
  | { kind: "expire-gate"; step: number }
  | { kind: "cancel" };

// Steps are picked modulo the run's length; a report comes from the current lease holder
// (worker -1) three times in four, so that sequences reach deep into the life cycle.
const stepIndex = fc.nat({ max: 3 });
const reporter = fc.oneof(
  { weight: 3, arbitrary: fc.constant(-1) },
  { weight: 1, arbitrary: fc.nat({ max: 2 }) },
);
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("claim" as const),
      step: stepIndex,
      worker: fc.nat({ max: 2 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("report" as const),
      step: stepIndex,
      worker: reporter,
      staleBy: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 2 })),
      outcome: fc.constantFrom("succeeded", "failed", "timed_out", "cancelled"),
      permanent: fc.boolean(),
      handedBack: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("expire" as const),
      step: stepIndex,
      staleBy: fc.nat({ max: 1 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("decide" as const),
      step: stepIndex,
      approver: fc.nat({ max: 2 }),
      approve: fc.oneof(
        { weight: 4, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("expire-gate" as const), step: stepIndex }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const) }) },
);

/** Runs one action against the model, checking fencing on the way. */
function perform(model: Model, action: Action): void {
  let act = action;
  if (act.kind === "cancel") {
    if (!terminalRunStates.has(model.run.state)) endRun(model, "cancelled", "cancelled");
    return;
  }
  const index = act.step % model.steps.length;
  const step = model.steps[index];
  if (step === undefined) return;
  if (act.kind === "report" && act.worker === -1)
    act = { ...act, worker: Math.max(0, workers.indexOf(step.lease_owner ?? "w1")) };
  if (act.kind === "claim") {
    // The claim statement's rule: a ready pending run step of an active run.
    if (step.state !== "pending" || !step.ready || terminalRunStates.has(model.run.state)) return;
    Object.assign(step, {
      state: "running",
      attempt: step.attempt + 1,
      fence: step.fence + 1,
      lease_owner: workers[act.worker],
      ready: false,
    });
    return;
  }
  // The approvals service records one decision per approver and refuses a second one.
  if (act.kind === "decide" && step.approvers.has(`a${act.approver}`)) return;
  const event = toEvent(step, act);
  const before = { ...step };
  if (act.kind === "decide" && step.state === "awaiting-approval") {
    step.approvers.add(`a${act.approver}`);
    if (act.approve) step.approvals++;
    else step.rejections++;
  }
  const decided = stepTransition(model.run, step, event, () => 0.5);
  const stale =
    (act.kind === "report" &&
      (act.staleBy > 0 ||
        step.lease_owner !== workers[act.worker] ||
        before.state !== "running")) ||
    (act.kind === "expire" && (act.staleBy > 0 || before.state !== "running"));
  if (stale) {
    // Fencing: a stale claim's report or expiry changes nothing.
    assert.equal(
      decided.kind,
      "ignored",
      `stale ${act.kind} on a ${before.state} step was applied`,
    );
    return;
  }
  if (decided.kind === "ignored") return;
  for (const change of decided.changes) apply(step, change);
  if (decided.deadLetter !== undefined)
    assert.ok(failedStepStates.has(step.state), "dead-lettered a step that did not fail");
  if (terminalStepStates.has(step.state)) stepEnded(model, index);
}

function toEvent(step: ModelStep, act: Exclude<Action, { kind: "claim" | "cancel" }>): StepEvent {
  switch (act.kind) {
    case "report":
      return {
        type: "attempt-ended",
        fence: step.fence - act.staleBy,
        owner: workers[act.worker] as string,
        end: act.handedBack
          ? { kind: "handed-back", exitCode: null, reason: "drained" }
          : {
              kind: "reported",
              outcome: act.outcome,
              exitCode: act.outcome === "succeeded" ? 0 : 1,
              reason: act.outcome,
              outputs: {},
              permanent: act.permanent,
            },
      };
    case "expire":
      return { type: "lease-expired", fence: step.fence - act.staleBy, maxLostAttempts };
    case "decide":
      return {
        type: "approval-decided",
        approve: act.approve,
        approver: `a${act.approver}`,
        comment: "",
        approvals: step.approvals + (act.approve && step.state === "awaiting-approval" ? 1 : 0),
        required: 2,
      };
    case "expire-gate":
      return { type: "gate-expired" };
  }
}

function checkInvariants(
  model: Model,
  finalSeen: Map<number, StepState>,
  runFinal: RunState | undefined,
): void {
  model.steps.forEach((step, index) => {
    assert.ok(step.successes <= 1, `step ${index} succeeded ${step.successes} times`);
    const final = finalSeen.get(index);
    if (final !== undefined) assert.equal(step.state, final, `terminal step ${index} changed`);
    if (terminalStepStates.has(step.state)) finalSeen.set(index, step.state);
    assert.ok(step.failed_attempts <= step.max_attempts, "more failed attempts than allowed");
    assert.ok(step.lost_attempts <= maxLostAttempts + 1, "more lost attempts than allowed");
    if (step.gate && step.state === "succeeded")
      assert.ok(step.approvals >= 2 && step.rejections === 0, "a gate passed without 2 approvals");
    if (step.state === "rejected") assert.ok(step.rejections > 0, "rejected without a rejection");
    if (step.state === "running")
      assert.notEqual(step.lease_owner, null, "running without a lease");
    else assert.equal(step.lease_owner, null, `a ${step.state} step kept its lease`);
  });
  if (runFinal !== undefined) assert.equal(model.run.state, runFinal, "terminal run state changed");
  const states = model.steps.map((step) => step.state);
  if (model.run.state === "succeeded")
    assert.ok(
      states.every((state) => state === "succeeded"),
      `run succeeded with ${states}`,
    );
  if (model.run.state === "running")
    assert.ok(
      states.every((state) => !failedStepStates.has(state)),
      `run still running with ${states}`,
    );
  if (model.run.state === "failed")
    assert.ok(
      states.some((state) => failedStepStates.has(state)),
      `run failed with ${states}`,
    );
  if (terminalRunStates.has(model.run.state))
    assert.ok(
      states.every((state) => state !== "pending" && state !== "awaiting-approval"),
      `run ${model.run.state} left steps waiting: ${states}`,
    );
}

describe("the step life cycle under random event sequences", () => {
  test("at most one success per step, terminal states final, fencing respected, run consistent", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("run" as const, "gate" as const), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(action, { maxLength: 80 }),
        (kinds, maxAttempts, actions) => {
          const model = newModel(kinds, maxAttempts);
          const finalSeen = new Map<number, StepState>();
          let runFinal: RunState | undefined;
          for (const act of actions) {
            perform(model, act);
            checkInvariants(model, finalSeen, runFinal);
            if (terminalRunStates.has(model.run.state)) runFinal = model.run.state;
          }
        },
      ),
      { numRuns: 4000 },
    );
  });

  test("a run's sequence reaches success when every attempt succeeds on its first claim", () => {
    const model = newModel(["run", "gate", "run"], 3);
    const script: Action[] = [
      { kind: "claim", step: 0, worker: 0 },
      {
        kind: "report",
        step: 0,
        worker: 0,
        staleBy: 0,
        outcome: "succeeded",
        permanent: false,
        handedBack: false,
      },
      { kind: "decide", step: 1, approver: 0, approve: true },
      { kind: "decide", step: 1, approver: 1, approve: true },
      { kind: "claim", step: 2, worker: 1 },
      {
        kind: "report",
        step: 2,
        worker: 1,
        staleBy: 0,
        outcome: "succeeded",
        permanent: false,
        handedBack: false,
      },
    ];
    for (const act of script) perform(model, act);
    assert.equal(model.run.state, "succeeded");
  });

  test("a lost lease retries elsewhere, and the lost worker's late report is fenced off", () => {
    const model = newModel(["run"], 3);
    perform(model, { kind: "claim", step: 0, worker: 0 });
    perform(model, { kind: "expire", step: 0, staleBy: 0 });
    const step = model.steps[0] as ModelStep;
    assert.deepEqual([step.state, step.lost_attempts, step.ready], ["pending", 1, true]);
    const late = stepTransition(model.run, step, {
      type: "attempt-ended",
      fence: 1,
      owner: "w1",
      end: {
        kind: "reported",
        outcome: "succeeded",
        exitCode: 0,
        reason: "",
        outputs: {},
        permanent: false,
      },
    });
    assert.equal(late.kind, "ignored");
  });

  test("failures retry until the budget is spent, then fail for good and dead-letter", () => {
    const model = newModel(["run"], 2);
    const step = model.steps[0] as ModelStep;
    perform(model, { kind: "claim", step: 0, worker: 0 });
    const first = stepTransition(
      model.run,
      step,
      {
        type: "attempt-ended",
        fence: step.fence,
        owner: "w1",
        end: {
          kind: "reported",
          outcome: "failed",
          exitCode: 1,
          reason: "boom",
          outputs: {},
          permanent: false,
        },
      },
      () => 0,
    );
    assert.ok(first.kind === "changed");
    assert.deepEqual(
      [first.changes[0]?.to, first.changes[0]?.readyInSeconds, first.deadLetter],
      ["pending", 1, undefined],
    );
    perform(model, {
      kind: "report",
      step: 0,
      worker: 0,
      staleBy: 0,
      outcome: "failed",
      permanent: false,
      handedBack: false,
    });
    perform(model, { kind: "claim", step: 0, worker: 1 });
    const last = stepTransition(model.run, step, {
      type: "attempt-ended",
      fence: step.fence,
      owner: "w2",
      end: {
        kind: "reported",
        outcome: "failed",
        exitCode: 1,
        reason: "boom",
        outputs: {},
        permanent: false,
      },
    });
    assert.ok(last.kind === "changed");
    assert.deepEqual([last.changes[0]?.to, last.deadLetter], ["failed", "boom"]);
  });
});
