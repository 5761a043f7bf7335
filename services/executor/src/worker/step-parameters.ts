import {
  containsRuntime,
  ExpressionError,
  type PlannedRunStep,
  runtimeReferences,
  sharedPlanningPool,
} from "@packrun/planning";
import { loadStepBindings, referencedStepIds } from "../run/step-bindings.ts";
import type { ClaimedStep } from "../store/claim-step.ts";
import { PermanentStepError } from "./attempt-errors.ts";
import type { WorkerContext } from "./worker-context.ts";

/** A step's `with` values resolved for this attempt, and the run's secrets. */
export interface StepParameters {
  with: Record<string, unknown>;
  secrets: Record<string, string>;
}

/**
 * Resolves the values of a step's `with` that were left to run time (earlier steps' outputs,
 * secrets, map bindings), off this event loop; a pack whose expressions fail is a permanent
 * failure.
 */
export async function resolveStepParameters(
  worker: WorkerContext,
  claimed: ClaimedStep,
  planned: PlannedRunStep,
): Promise<StepParameters> {
  const { run, step } = claimed;
  const references = runtimeReferences(planned.run.with);
  let secrets: Record<string, string> = {};
  if (run.secret_names.length > 0) {
    const stored = await worker.options.vault.get(run.id);
    if (stored === undefined)
      throw new PermanentStepError(
        "the run's secrets are no longer available (expired or lost with the queue store); resubmit the run",
      );
    secrets = stored;
  }
  const steps = await loadStepBindings(
    worker.options.database,
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
