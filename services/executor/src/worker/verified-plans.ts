import type { Database } from "@packrun/db";
import { canonicalJson, computePlanHash, type Plan } from "@packrun/planning";
import type { ClaimedStep } from "../store/claim-step.ts";
import { flattenPlannedSteps } from "../store/plan-rows.ts";
import { PermanentStepError } from "./attempt-errors.ts";

interface VerifiedPlan {
  hash: string;
  plan: Plan;
  steps: Map<string, string>;
}

/**
 * Plans this worker has parsed and hashed, per run. Checks, before every attempt, that the
 * stored plan still hashes to the run's planHash (the database hashes the stored text, so only
 * 32 bytes travel per check) and that the step row about to run is the step of that plan. A
 * cached plan is only reused while the stored text still hashes to planHash: a plan changed
 * after submission is never executed, whichever worker already ran a step of the run.
 */
export class VerifiedPlans {
  readonly #plans = new Map<string, VerifiedPlan>();

  /** True when the run's plan is cached (its claim need not fetch the plan's text). */
  has(runId: string): boolean {
    return this.#plans.has(runId);
  }

  /** The claimed step's plan, verified; throws {@link PermanentStepError} on any mismatch. */
  async verify(
    database: Database,
    { run, step, storedPlanHash, planText }: ClaimedStep,
  ): Promise<Plan> {
    if (storedPlanHash !== run.plan_hash)
      throw new PermanentStepError(
        `plan hash mismatch: the stored plan hashes to ${storedPlanHash} but the run's planHash is ${run.plan_hash}; refusing to execute`,
      );
    let verified = this.#plans.get(step.run_id);
    if (verified?.hash !== run.plan_hash) {
      const text =
        planText ??
        (
          await database.query<{ plan_json: string }>("SELECT plan_json FROM runs WHERE id = $1", [
            step.run_id,
          ])
        ).rows[0]?.plan_json;
      verified = parseVerified(text, run.plan_hash);
      if (this.#plans.size > 1000) this.#plans.clear();
      this.#plans.set(step.run_id, verified);
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
}

function parseVerified(text: string | undefined, planHash: string): VerifiedPlan {
  const plan = JSON.parse(text ?? "null") as Plan;
  const actual = computePlanHash(plan);
  if (actual !== planHash)
    throw new PermanentStepError(
      `plan hash mismatch: the stored plan hashes to ${actual} but the run's planHash is ${planHash}; refusing to execute`,
    );
  const steps = new Map(
    flattenPlannedSteps(plan.steps).map((entry) => [entry.step_id, canonicalJson(entry.planned)]),
  );
  return { hash: planHash, plan, steps };
}
