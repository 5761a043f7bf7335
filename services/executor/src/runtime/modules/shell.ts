import { mkdir } from "node:fs/promises";
import { PathError, resolveInside } from "../contained-path.ts";
import { describeTimeout } from "../durations.ts";
import { buildLaunchPlan } from "../launch-plan.ts";
import {
  describeExit,
  failedBeforeStart,
  type ModuleContext,
  type ModuleResult,
} from "../module-result.ts";
import { checkEnvNames, stepEnvironment } from "../step-env.ts";
import { supervise } from "../supervise.ts";
import { parseParams, shellParams } from "./params.ts";

/** Reason of a sealed step that cannot get the sandbox; it never runs unsealed. */
export const SEALED_NEEDS_SANDBOX = "sealed mode requires the sandbox runtime";

/**
 * builtin:shell: runs `argv` directly (no shell), or `script` as `/bin/sh -c <script>`, with the
 * step's `env` as the only input channel for values; `workdir` is relative to the attempt
 * workdir. Runs on the process or sandbox runtime; a sealed step always runs in the sandbox
 * (or fails closed when the sandbox does not work here).
 */
export async function runShell(context: ModuleContext): Promise<ModuleResult> {
  const { request, sink, layout, support } = context;
  const params = parseParams("builtin:shell", shellParams, request.with);
  if (!params.ok) return failedBeforeStart(params.reason);
  const env = params.value.env ?? {};
  const envProblem = checkEnvNames(env);
  if (envProblem) return failedBeforeStart(`invalid parameters for builtin:shell: ${envProblem}`);

  if (request.runtime === "container") {
    return failedBeforeStart(
      "builtin:shell runs on the process or sandbox runtime; use builtin:container for images",
    );
  }
  const sealed = request.sandbox.mode === "sealed";
  let kind = request.runtime;
  if (sealed && !support.sandbox) return failedBeforeStart(SEALED_NEEDS_SANDBOX);
  if (kind === "sandbox" && !support.sandbox) {
    return failedBeforeStart(
      "the sandbox runtime is not available on this worker (bubblewrap missing or not working)",
    );
  }
  if (sealed && kind === "process") {
    kind = "sandbox";
    sink.system("[packrun] sealed step: running in the sandbox runtime (no network)");
  }
  if (kind === "process" && !support.pidNamespace) {
    sink.system(
      "[packrun] no PID namespace on this worker: a process that leaves the step's process group can outlive the step",
    );
  }
  if (request.sandbox.egressAllowlist.length > 0) {
    sink.system(
      sealed
        ? "[packrun] sealed step: no network at all; the egress allowlist is not applied"
        : "[packrun] egress allowlist is not enforced by this runtime: open mode has unrestricted network",
    );
  }

  let cwd = layout.workdir;
  try {
    if (params.value.workdir !== undefined && params.value.workdir !== ".") {
      cwd = resolveInside(layout.workdir, params.value.workdir, "with.workdir");
    }
    await mkdir(cwd, { recursive: true });
  } catch (error) {
    if (error instanceof PathError) return failedBeforeStart(error.message);
    throw error;
  }

  const argv =
    params.value.script !== undefined
      ? ["/bin/sh", "-c", params.value.script]
      : (params.value.argv as string[]);
  const plan = await buildLaunchPlan(
    kind,
    {
      argv,
      env: stepEnvironment(env, layout, context.workerId),
      cwd,
      layout,
      stagingRoot: request.stagingRoot,
      sealed,
      memoryBytes: request.limits.memoryBytes,
      pids: request.limits.pids,
    },
    support,
  );
  const exit = await supervise(plan, {
    sink,
    timeoutMs: request.timeoutMs,
    killGraceMs: request.killGraceMs,
    signal: request.signal,
  });
  if (exit.spawnError) return failedBeforeStart(`could not start the step: ${exit.spawnError}`);
  let { outcome, reason } = describeExit(exit, describeTimeout(request.timeoutMs ?? 0));
  if (exit.timeReportError !== null && outcome === "succeeded") {
    // The step tampered with the runtime's own file: its exit status and measurements are
    // not trustworthy, and it must not pass as a success.
    outcome = "failed";
    reason = `${exit.timeReportError} (the step replaced the runtime's file .packrun/time-report)`;
  }
  return {
    outcome,
    reason,
    exitCode: exit.exitCode,
    signal: exit.signal,
    cpuMicros: exit.report?.cpuMicros ?? 0,
    peakMemoryBytes: exit.report?.peakMemoryBytes ?? 0,
    readsOutputFile: true,
  };
}
