/**
 * The body of a planning-pool thread (see planning-pool.ts): parses, validates and plans one
 * manifest, or evaluates what a plan left to run time. Results and errors cross the thread boundary as plain data; the pool rebuilds the
 * error classes on the other side.
 */
import { isPackrunError } from "@packrun/errors";
import { loadManifest, planPack } from "./build-plan.ts";
import { PackValidationError } from "./diagnostic.ts";
import { ExpressionError, evaluateExpression, parseExpression } from "./expression.ts";
import type { PlanningJob, PlanningTask, PlanningTaskResult } from "./planning-task.ts";
import { evaluateRuntimeValue, expandMapTemplate, resolveRuntimeValues } from "./runtime-values.ts";

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
    if (job.kind === "plan") {
      const { plan, planJson, planHash, summary } = planPack(job.text, job.options);
      return { ok: true, kind: "plan", planned: { plan, planJson, planHash, summary } };
    }
    return { ok: true, kind: "value", value: evaluateJob(job) };
  } catch (error) {
    if (error instanceof ExpressionError)
      return { ok: false, kind: "expression", message: error.message };
    if (error instanceof PackValidationError)
      return { ok: false, kind: "validation", diagnostics: error.diagnostics };
    if (isPackrunError(error))
      return { ok: false, kind: "packrun", code: error.code, message: error.message };
    throw error;
  }
}

function evaluateJob(
  job: Extract<PlanningJob, { bindings: unknown } | { kind: "expand" }>,
): unknown {
  switch (job.kind) {
    case "evaluate":
      return evaluateRuntimeValue(job.value, job.bindings);
    case "resolve":
      return resolveRuntimeValues(job.value, job.bindings, { text: job.text });
    case "expression":
      return evaluateExpression(parseExpression(job.source), job.bindings);
    case "expand":
      return job.items.map((item, index) =>
        expandMapTemplate(job.template, job.mapId, index, item, job.inputs),
      );
  }
}
