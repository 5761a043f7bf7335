import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@packrun/logging";
import type { PlannedRunStep } from "@packrun/planning";
import type { WatchedAttempt } from "../lease/lease-watchdog.ts";
import { stepTimeoutMs } from "../run/run-deadline.ts";
import { applyDeclaredOutputs } from "../run/typed-outputs.ts";
import type { ModuleName, RuntimeKind, StepExecutionResult } from "../runtime/types.ts";
import type { ClaimedStep } from "../store/claim-step.ts";
import { extendLease, type HeldLease } from "./lease-heartbeat.ts";
import { resolveStepParameters } from "./step-parameters.ts";
import type { WorkerContext } from "./worker-context.ts";

/**
 * Runs one claimed attempt: verifies the plan, resolves the step's parameters, runs the step in
 * a workdir of its own while heartbeating its lease, forwards its lines to the log writer, types
 * its outputs and stores its artifacts.
 */
export async function runAttempt(
  worker: WorkerContext,
  claimed: ClaimedStep,
  controller: AbortController,
  log: Logger,
  watched: WatchedAttempt,
  claimSentAt: number,
): Promise<StepExecutionResult> {
  const { options } = worker;
  const { run, step, fence } = claimed;
  const plan = await worker.plans.verify(options.database, claimed);
  const planned = step.planned as PlannedRunStep;
  const parameters = await resolveStepParameters(worker, claimed, planned);
  const stagingRoot = join(options.workRoot, "staging", run.id);
  await mkdir(stagingRoot, { recursive: true });
  // A workdir mounted ahead (its own tmpfs on a root worker), used by this attempt only.
  const slot = await worker.workdirs.take();
  const { workdir } = slot;
  let lineNumber = 0;
  // The lease runs from the claim; each successful heartbeat extends it (monotonic clock).
  const lease: HeldLease = { renewedAt: claimSentAt, watched };
  const beat = setInterval(
    () => void extendLease(worker, claimed, controller, log, lease),
    Math.max(200, options.leaseMs / 3),
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
    const result = await options.runStep({
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
      killGraceMs: options.killGraceMs,
      limits: options.limits,
      artifacts: planned.run.artifacts,
      signal: controller.signal,
      watch: watched.watch,
      workerId: worker.id,
      onLog: (line) => {
        lineNumber++;
        options.logs.append(run, {
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
    return await storeArtifacts(worker, claimed, workdir, typed, log);
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
async function storeArtifacts(
  worker: WorkerContext,
  claimed: ClaimedStep,
  workdir: string,
  result: StepExecutionResult,
  log: Logger,
): Promise<StepExecutionResult> {
  const uploader = worker.options.artifacts;
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
