/**
 * The body of a planning-pool thread (see planning-pool.ts): parses, validates and plans one
 * manifest. Results and errors cross the thread boundary as plain data; the pool rebuilds the
 * error classes on the other side.
 */
import { isPackrunError } from "@packrun/errors";
import { loadManifest, planPack } from "./build-plan.ts";
import { PackValidationError } from "./diagnostic.ts";
import type { PlanningTask, PlanningTaskResult } from "./planning-task.ts";

/** Runs one planning task; never throws for a refused manifest (the refusal is the result). */
export default function runPlanningTask(task: PlanningTask): PlanningTaskResult {
  const started = new Int32Array(task.started);
  Atomics.store(started, 0, 1);
  Atomics.notify(started, 0);
  const job = task.job;
  try {
    if (job.kind === "inspect")
      return {
        ok: true,
        kind: "inspect",
        metadata: loadManifest(job.text, job.limits).manifest.metadata,
      };
    const { plan, planJson, planHash, summary } = planPack(job.text, job.options);
    return { ok: true, kind: "plan", planned: { plan, planJson, planHash, summary } };
  } catch (error) {
    if (error instanceof PackValidationError)
      return { ok: false, kind: "validation", diagnostics: error.diagnostics };
    if (isPackrunError(error))
      return { ok: false, kind: "packrun", code: error.code, message: error.message };
    throw error;
  }
}
