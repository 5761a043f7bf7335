import {
  ExpressionError,
  isRuntimeValue,
  type PlannedStep,
  runtimeReferences,
  sharedPlanningPool,
} from "@packrun/planning";
import { flattenPlannedSteps, insertStepRows } from "../store/plan-rows.ts";
import type { StepRow } from "../store/run-rows.ts";
import * as runStore from "../store/run-store.ts";
import {
  awaitApprovalChange,
  type PlannedApproval,
  type PolicyEvaluation,
  policyGateOutcome,
} from "./gates.ts";
import type { RunScheduler } from "./scheduler.ts";
import { loadStepBindings, referencedStepIds } from "./step-bindings.ts";

/** Most steps a run may hold after run-time map expansion (the planner's limit too). */
const maxStepsPerRun = 10_000;

/**
 * Reaches a pending step (activation): skips a disabled one or one whose `when` is false, makes
 * a `run` step claimable, starts a block, waits at an approval gate, decides a policy gate.
 * Returns the step when it finished immediately (skipped, failed, decided gate, empty block);
 * undefined when it is now running, queued or awaiting a decision.
 */
export async function activateStep(
  scheduler: RunScheduler,
  step: StepRow,
): Promise<StepRow | undefined> {
  // A step a resume kept from the original run is done already: go on after it.
  if (step.state === "succeeded") return step;
  if (step.state !== "pending" || step.ready_at !== null) return undefined;
  const planned = step.planned;
  const enabled = await evaluateWhen(scheduler, step, planned);
  if (typeof enabled === "string") return failPending(scheduler, step, enabled);
  if (enabled !== true)
    return scheduler.apply(step, { to: "skipped", finished: true, reason: enabled.skipped });
  switch (planned.kind) {
    case "run":
      await scheduler.apply(step, { to: "pending", readyInSeconds: 0 });
      return undefined;
    case "parallel":
    case "map": {
      const running = await scheduler.apply(step, {
        to: "running",
        started: true,
        readyInSeconds: 0,
      });
      if (running === undefined) return undefined;
      if (planned.kind === "map" && isRuntimeValue(planned.map.items)) {
        const failure = await expandMap(scheduler, running, planned);
        if (failure !== undefined)
          return scheduler.apply(running, { to: "failed", finished: true, reason: failure });
      }
      return scheduler.progressContainer(step.step_id);
    }
    case "approval-gate": {
      const approvals = (await scheduler.planPart<PlannedApproval[]>("approvals")) ?? [];
      const approval = approvals.find((candidate) => candidate.id === planned.gate.approvalId);
      await scheduler.apply(step, awaitApprovalChange(planned, approval));
      return undefined;
    }
    case "policy-gate":
      return evaluatePolicy(scheduler, step, planned);
  }
}

/** True, `{ skipped }` with the reason, or the reason `when` could not be evaluated. */
async function evaluateWhen(
  scheduler: RunScheduler,
  step: StepRow,
  planned: PlannedStep,
): Promise<true | { skipped: string } | string> {
  if (planned.enabled === false) return { skipped: planned.skipReason ?? "disabled" };
  if (!isRuntimeValue(planned.enabled)) return true;
  let enabled: unknown;
  try {
    enabled = await sharedPlanningPool().evaluateRuntimeValue(
      planned.enabled,
      await bindings(scheduler, step, planned.enabled),
    );
  } catch (error) {
    return error instanceof ExpressionError ? error.message : String(error);
  }
  if (typeof enabled !== "boolean")
    return `when must evaluate to true or false; \`${planned.enabled.$runtime}\` gave ${JSON.stringify(enabled)}`;
  return enabled ? true : { skipped: `when \`${planned.enabled.$runtime}\` is false` };
}

async function bindings(
  scheduler: RunScheduler,
  step: StepRow,
  value: unknown,
): Promise<Record<string, unknown>> {
  const ids = referencedStepIds(runtimeReferences(value));
  return {
    inputs: scheduler.run.inputs,
    steps: await loadStepBindings(scheduler.tx, scheduler.run.id, ids),
    ...step.bindings,
  };
}

/** Fails a pending step whose run-time expression could not be evaluated. */
async function failPending(
  scheduler: RunScheduler,
  step: StepRow,
  reason: string,
): Promise<StepRow> {
  const running = (await scheduler.apply(step, { to: "running", started: true })) ?? step;
  return (await scheduler.apply(running, { to: "failed", finished: true, reason })) ?? running;
}

/** Expands a map whose items are known only now; the reason it could not, if it could not. */
async function expandMap(
  scheduler: RunScheduler,
  container: StepRow,
  planned: Extract<PlannedStep, { kind: "map" }>,
): Promise<string | undefined> {
  if (!isRuntimeValue(planned.map.items) || planned.map.template === null) return undefined;
  const run = scheduler.run;
  let items: unknown;
  try {
    items = await sharedPlanningPool().evaluateRuntimeValue(
      planned.map.items,
      await bindings(scheduler, container, planned.map.items),
    );
  } catch (error) {
    return error instanceof ExpressionError ? error.message : String(error);
  }
  if (!Array.isArray(items))
    return `map items must evaluate to a list; got ${items === null ? "null" : typeof items}`;
  let children: PlannedStep[];
  try {
    children = await sharedPlanningPool().expandMapTemplates(
      planned.map.template,
      container.step_id,
      items,
      run.inputs,
    );
  } catch (error) {
    return error instanceof ExpressionError ? error.message : String(error);
  }
  const rows = flattenPlannedSteps(children);
  const count =
    (await scheduler.tx.query<{ n: number }>(runStore.countSteps, [run.id])).rows[0]?.n ?? 0;
  if (count + rows.length > maxStepsPerRun)
    return `map expands to ${rows.length} steps; a run holds at most ${maxStepsPerRun}`;
  await insertStepRows(scheduler.tx, run, rows);
  scheduler.changed();
  await scheduler.events([
    {
      type: "step.expanded",
      level: "info",
      stepId: container.step_id,
      message: `map expanded to ${items.length} items`,
      metadata: { items: items.length },
      idempotencyKey: `${run.id}/${container.step_id}/expanded`,
    },
  ]);
  return undefined;
}

/** Decides a policy gate now: its expression sees the inputs, the steps so far and the run. */
async function evaluatePolicy(
  scheduler: RunScheduler,
  step: StepRow,
  planned: Extract<PlannedStep, { kind: "policy-gate" }>,
): Promise<StepRow | undefined> {
  const policies =
    (await scheduler.planPart<{ name: string; expression: string }[]>("policies")) ?? [];
  const policy = policies.find((candidate) => candidate.name === planned.gate.policy);
  const running = await scheduler.apply(step, { to: "running", started: true });
  if (running === undefined) return undefined;
  const evaluation = await evaluatePolicyExpression(scheduler, step, planned, policy);
  const outcome = policyGateOutcome(
    scheduler.run.id,
    step.step_id,
    planned.gate.failAction,
    evaluation,
  );
  await scheduler.events([outcome.event]);
  return scheduler.apply(running, outcome.change);
}

async function evaluatePolicyExpression(
  scheduler: RunScheduler,
  step: StepRow,
  planned: Extract<PlannedStep, { kind: "policy-gate" }>,
  policy: { name: string; expression: string } | undefined,
): Promise<PolicyEvaluation> {
  const run = scheduler.run;
  try {
    if (policy === undefined)
      throw new ExpressionError(`policy "${planned.gate.policy}" is not in the plan`);
    const values = {
      inputs: run.inputs,
      steps: await loadStepBindings(scheduler.tx, run.id),
      run: {
        id: run.id,
        tenant: run.tenant,
        packName: run.pack_name,
        packVersion: run.pack_version,
        planHash: run.plan_hash,
      },
      // Parameters may read earlier steps' outputs (`steps.x.outputs.y`), known only now.
      parameters: await sharedPlanningPool().resolveRuntimeValues(
        planned.gate.parameters,
        await bindings(scheduler, step, planned.gate.parameters),
      ),
    };
    const value = await sharedPlanningPool().evaluateExpression(policy.expression, values);
    if (typeof value !== "boolean")
      throw new ExpressionError(
        `policy must evaluate to true or false; gave ${JSON.stringify(value)}`,
      );
    return { policy: policy.name, expression: policy.expression, passed: value };
  } catch (error) {
    return {
      policy: planned.gate.policy,
      error: error instanceof Error ? error.message : String(error),
    };
  }
}
