import { mkdir } from "node:fs/promises";
import path from "node:path";
import { PathError, resolveInside } from "../contained-path.ts";
import { CONTAINER_WORKSPACE, runContainer } from "../container-runtime.ts";
import { describeTimeout } from "../durations.ts";
import { operatorDeny } from "../egress-rules.ts";
import {
  describeExit,
  failedBeforeStart,
  type ModuleContext,
  type ModuleResult,
} from "../module-result.ts";
import { checkEnvNames } from "../step-env.ts";
import { handToStepUser, stepUser, WORKER_IS_ROOT } from "../step-user.ts";
import { containerRuntime } from "../support.ts";
import { containerParams, parseParams } from "./params.ts";

/**
 * builtin:container: runs `image` (with `command` as its argv, else the image's default) under
 * podman; the attempt workdir is mounted at /workspace and `workdir` is relative to it; the
 * staging root is mounted read-only at its host path. The container runs as the step user
 * without capabilities on a read-only root; sealed steps get `--network none`, open ones a
 * network namespace with the egress rules (see container-runtime.ts).
 */
export async function runContainerModule(context: ModuleContext): Promise<ModuleResult> {
  const { request, sink, layout, support } = context;
  const params = parseParams("builtin:container", containerParams, request.with);
  if (!params.ok) return failedBeforeStart(params.reason);
  const env = params.value.env ?? {};
  const envProblem = checkEnvNames(env);
  if (envProblem)
    return failedBeforeStart(`invalid parameters for builtin:container: ${envProblem}`);
  // Checked at the first container step, not at start (containerRuntime, support.ts).
  if (!support.podman || !(await containerRuntime()).works) {
    return failedBeforeStart(
      "the container runtime is not available on this worker (podman missing or not working)",
    );
  }
  for (const [what, value] of [
    ["workdir", layout.workdir],
    ["stagingRoot", request.stagingRoot],
  ] as const) {
    if (/[:,]/.test(value)) return failedBeforeStart(`${what} path must not contain ":" or ","`);
  }
  const sealed = request.sandbox.mode === "sealed";
  const isolated = !support.unisolated;
  if (!sealed && isolated && !support.network) {
    sink.system(
      "[packrun] no outbound network on this worker: open steps need slirp4netns, nsenter, unshare and nft",
    );
  }

  let relative = ".";
  try {
    if (params.value.workdir !== undefined && params.value.workdir !== ".") {
      resolveInside(layout.workdir, params.value.workdir, "with.workdir");
      relative = params.value.workdir;
    }
  } catch (error) {
    if (error instanceof PathError) return failedBeforeStart(error.message);
    throw error;
  }
  const cwd = path.join(layout.workdir, relative);
  await mkdir(cwd, { recursive: true });
  const user = isolated ? stepUser() : null;
  if (user && WORKER_IS_ROOT) await handToStepUser(layout, cwd, user);
  const inContainer = (hostPath: string): string =>
    path.posix.join(CONTAINER_WORKSPACE, path.relative(layout.workdir, hostPath));

  const exit = await runContainer(
    {
      podman: support.podman,
      image: params.value.image,
      command: params.value.command,
      env: { ...env, PACKRUN_OUTPUT: inContainer(layout.outputFile) },
      workdir: layout.workdir,
      containerCwd: path.posix.join(CONTAINER_WORKSPACE, relative),
      stagingRoot: request.stagingRoot,
      sealed,
      network:
        !sealed && isolated && support.network
          ? {
              tools: support.network,
              policy: { allowlist: request.sandbox.egressAllowlist, deny: operatorDeny() },
            }
          : null,
      user,
      memoryBytes: request.limits.memoryBytes,
      pids: request.limits.pids,
      timeoutMs: request.timeoutMs,
      killGraceMs: request.killGraceMs,
      signal: request.signal,
      watch: request.watch,
      labels: {
        workerId: context.workerId,
        runId: request.runId,
        stepId: request.stepId,
        attempt: request.attempt,
      },
    },
    sink,
  );
  if (exit.setupError) return failedBeforeStart(exit.setupError);
  const described = describeExit(
    { exitCode: exit.exitCode, signal: null, stoppedFor: exit.stoppedFor },
    describeTimeout(request.timeoutMs ?? 0),
  );
  // The container's main process was killed by the kernel for exceeding the memory limit.
  const reason =
    exit.oomKilled && described.outcome === "failed"
      ? `${described.reason} (out of memory)`
      : described.reason;
  return {
    outcome: described.outcome,
    reason,
    exitCode: exit.exitCode,
    signal: null,
    cpuMicros: exit.cpuMicros,
    peakMemoryBytes: exit.peakMemoryBytes,
    readsOutputFile: true,
    ...(exit.imageDigest === undefined
      ? {}
      : { image: { reference: params.value.image, digest: exit.imageDigest } }),
  };
}
