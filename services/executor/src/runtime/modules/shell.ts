import { mkdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isRunnable, missingCommandIn } from "../command-lookup.ts";
import { PathError, resolveInside } from "../contained-path.ts";
import { describeTimeout } from "../durations.ts";
import { operatorDeny } from "../egress-rules.ts";
import { buildLaunchPlan, IsolationUnavailableError, releasePlan } from "../launch-plan.ts";
import {
  describeExit,
  failedBeforeStart,
  type ModuleContext,
  type ModuleResult,
} from "../module-result.ts";
import { checkEnvNames, DEFAULT_PATH, stepEnvironment } from "../step-env.ts";
import { stepLimits } from "../step-limits.ts";
import { stepMounts } from "../step-mounts.ts";
import { handToStepUser, stepUser, WORKER_IS_ROOT } from "../step-user.ts";
import { type LaunchPlan, type SupervisedExit, supervise } from "../supervise.ts";
import { parseParams, shellParams } from "./params.ts";

/** Launches of a sandbox that failed before the step ran (see SupervisedExit.setupFailed). */
const SANDBOX_SETUP_TRIES = 5;

/** Reason of a sealed step that cannot get the sandbox; it never runs unsealed. */
export const SEALED_NEEDS_SANDBOX = "sealed mode requires the sandbox runtime";

/**
 * builtin:shell: runs `argv` directly (no shell), or `script` as `/bin/sh -c <script>`, with the
 * step's `env` as the only input channel for values; `workdir` is relative to the attempt
 * workdir. Runs isolated on the process or sandbox runtime alike (see launch-plan.ts); a step
 * that cannot be isolated here fails closed, unless the operator turned isolation off.
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
  if (sealed && !support.sandbox) return failedBeforeStart(SEALED_NEEDS_SANDBOX);
  if (request.runtime === "sandbox" && !support.sandbox && !support.unisolated) {
    return failedBeforeStart(
      "the sandbox runtime is not available on this worker (bubblewrap missing or not working)",
    );
  }
  if (!sealed && !support.network && !support.unisolated) {
    sink.system(
      "[packrun] no outbound network on this worker: open steps need slirp4netns, nsenter and nft",
    );
  }
  const user = stepUser();
  let cwd = layout.workdir;
  try {
    if (params.value.workdir !== undefined && params.value.workdir !== ".") {
      cwd = resolveInside(layout.workdir, params.value.workdir, "with.workdir");
    }
    await mkdir(cwd, { recursive: true });
    if (WORKER_IS_ROOT && !support.unisolated) await handToStepUser(layout, cwd, user);
  } catch (error) {
    if (error instanceof PathError) return failedBeforeStart(error.message);
    throw error;
  }

  const argv =
    params.value.script !== undefined
      ? ["/bin/sh", "-c", params.value.script]
      : (params.value.argv as string[]);
  const environment = stepEnvironment(env, layout, context.workerId);
  // A missing program is the commonest first failure (examples need tools this machine may
  // lack): say so in plain words rather than as the wrappers' exit code 127.
  const program = argv[0] ?? "";
  if (
    params.value.script === undefined &&
    !(await isRunnable(program, environment.PATH ?? DEFAULT_PATH, cwd))
  )
    return failedBeforeStart(
      `command not found: ${program}${program.includes("/") ? "" : ` (searched PATH ${environment.PATH ?? DEFAULT_PATH})`}`,
    );
  const superviseOptions = {
    sink,
    timeoutMs: request.timeoutMs,
    killGraceMs: request.killGraceMs,
    signal: request.signal,
    watch: request.watch,
  };
  let plan: LaunchPlan;
  try {
    plan = await buildLaunchPlan(
      {
        argv,
        env: environment,
        cwd,
        layout,
        stagingRoot: request.stagingRoot,
        sealed,
        ...stepLimits(request.limits),
        workerId: context.workerId,
        user,
        workerIsRoot: WORKER_IS_ROOT,
        egress: { allowlist: request.sandbox.egressAllowlist, deny: operatorDeny() },
        mounts: stepMounts(),
      },
      support,
    );
  } catch (error) {
    if (error instanceof IsolationUnavailableError) return failedBeforeStart(error.message);
    throw error;
  }
  // Set-up failures are retried silently: nothing of the step ran, so nothing belongs in its log.
  let exit: SupervisedExit;
  try {
    exit = await supervise(plan, superviseOptions);
    for (let retry = 1; exit.setupFailed && retry < SANDBOX_SETUP_TRIES; retry++) {
      await sleep(25 * retry);
      exit = await supervise(plan, superviseOptions);
    }
  } finally {
    releasePlan(plan);
  }
  if (exit.setupFailed) {
    return failedBeforeStart(
      `the step's sandbox could not be set up: ${exit.setupError ?? "bubblewrap exited with code 1"}`,
    );
  }
  if (exit.spawnError) return failedBeforeStart(`could not start the step: ${exit.spawnError}`);
  const described = describeExit(exit, describeTimeout(request.timeoutMs ?? 0));
  const missing = exit.exitCode === 127 ? missingCommandIn(sink.stderrTail) : undefined;
  let { outcome } = described;
  let reason =
    missing === undefined
      ? described.reason
      : `command not found: ${missing} (${described.reason})`;
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
