import { mkdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { collectArtifacts } from "./artifacts.ts";
import { describeTimeout } from "./durations.ts";
import { LogSink } from "./log-sink.ts";
import { createMasker, type Masker } from "./masking.ts";
import type { ModuleContext, ModuleResult } from "./module-result.ts";
import { failedBeforeStart } from "./module-result.ts";
import { runBundleIngest } from "./modules/bundle-ingest.ts";
import { runContainerModule } from "./modules/container.ts";
import { runNoop } from "./modules/noop.ts";
import { runShell } from "./modules/shell.ts";
import { DEFAULT_MAX_OUTPUT_FILE_BYTES, readOutputFile } from "./output-file.ts";
import { attemptLayout } from "./step-env.ts";
import { type HostSupport, hostSupport } from "./support.ts";
import type { StepExecutionRequest, StepExecutionResult } from "./types.ts";

/** Least time left for collecting a step's artifacts after its command ended. */
const MIN_COLLECTION_MS = 1_000;

/** Worker id used when the request names none. */
export const DEFAULT_WORKER_ID = `${hostname()}-${process.pid}`;

/**
 * Runs one step attempt. Never rejects for anything the step or its parameters do (those become
 * a failed result with a reason); rejects only when `onLog` threw or on an unexpected fault of
 * the worker itself (e.g. the workdir cannot be written).
 */
export function executeStep(request: StepExecutionRequest): Promise<StepExecutionResult> {
  return executeStepWith(request, hostSupport());
}

/**
 * executeStep with given machine support instead of the probed one; tests use it to exercise
 * the fallbacks (no bubblewrap, no sandbox) on a machine that has everything.
 */
export async function executeStepWith(
  request: StepExecutionRequest,
  supportPromise: Promise<HostSupport> | HostSupport,
): Promise<StepExecutionResult> {
  const started = performance.now();
  const masker = createMasker(request.secrets);
  const sink = new LogSink({
    masker,
    maxLogBytes: request.limits.maxLogBytes,
    maxLineBytes: request.limits.maxLineBytes,
    ...(request.limits.maxLogLines === undefined
      ? {}
      : { maxLogLines: request.limits.maxLogLines }),
    onLog: request.onLog,
  });
  const layout = attemptLayout(request.workdir);

  let result: ModuleResult;
  if (request.signal.aborted) {
    result = { ...failedBeforeStart("cancelled before start"), outcome: "cancelled" };
  } else {
    await mkdir(layout.tmpDir, { recursive: true });
    // A reused workdir must not hand a previous attempt's outputs or measurements to this one.
    await rm(layout.outputFile, { force: true });
    await rm(layout.timeReportFile, { force: true });
    await mkdir(request.stagingRoot, { recursive: true });
    const context: ModuleContext = {
      request,
      sink,
      layout,
      support: await supportPromise,
      workerId: request.workerId ?? DEFAULT_WORKER_ID,
    };
    result = await runModule(context);
  }

  let { outcome, reason } = result;
  let outputs: Record<string, string> = result.outputs ?? {};
  if (result.readsOutputFile && outcome === "succeeded") {
    const parsed = await readOutputFile(
      request.workdir,
      layout.outputFile,
      request.limits.maxOutputFileBytes ?? DEFAULT_MAX_OUTPUT_FILE_BYTES,
    );
    const leaking = parsed.ok ? namesHoldingSecrets(parsed.outputs, masker) : [];
    if (parsed.ok && leaking.length === 0) outputs = parsed.outputs;
    else if (parsed.ok) {
      // A name is stored, served and referenced as is (`steps.x.outputs.<name>`); masking it
      // would leave a useless "***" name, so such outputs are refused outright.
      outcome = "failed";
      reason = `$PACKRUN_OUTPUT: output name ${leaking.join(", ")} contains a secret value; the step's outputs were refused`;
    } else {
      outcome = "failed";
      reason = parsed.error;
    }
  }
  const deadline = collectionDeadline(request, started);
  const collected =
    request.artifacts.length > 0 && result.readsOutputFile
      ? await collectArtifacts(
          request.workdir,
          request.artifacts,
          outcome === "succeeded",
          deadline.signal,
          request.limits.maxArtifactBytes,
        )
      : { artifacts: [], error: null, aborted: false };
  deadline.dispose();
  if (collected.aborted && outcome === "succeeded") {
    // Collecting is part of the step: running out of time or being cancelled here ends the
    // step the same way as during its command.
    if (request.signal.aborted) {
      outcome = "cancelled";
      reason = `cancelled: ${collected.error}`;
    } else {
      outcome = "timed_out";
      reason = `timed out after ${describeTimeout(request.timeoutMs ?? 0)}: ${collected.error}`;
    }
  } else if (collected.error && outcome === "succeeded") {
    outcome = "failed";
    reason = collected.error;
  }
  if (sink.callbackError !== null) {
    throw new Error("onLog callback threw; the step's log is incomplete", {
      cause: sink.callbackError,
    });
  }
  return {
    outcome,
    exitCode: result.exitCode,
    signal: result.signal,
    reason: masker.mask(reason),
    durationMs: Math.round(performance.now() - started),
    cpuMicros: result.cpuMicros,
    peakMemoryBytes: result.peakMemoryBytes,
    outputs: maskValues(outputs, masker),
    artifacts: collected.artifacts,
    logTruncated: sink.truncated,
    ...(result.image === undefined ? {} : { image: result.image }),
  };
}

/**
 * A signal for what the runtime does after the step's command (hashing artifacts): aborted by
 * the step's cancellation and when the step's own timeout, counted from its start, runs out.
 * At least {@link MIN_COLLECTION_MS} is left, so a command that ended just inside its timeout
 * can still have its small artifacts hashed (like the kill grace period, a bounded overrun).
 */
function collectionDeadline(
  request: StepExecutionRequest,
  started: number,
): { signal: AbortSignal; dispose(): void } {
  if (request.timeoutMs === null) return { signal: request.signal, dispose() {} };
  const controller = new AbortController();
  const remaining = Math.max(MIN_COLLECTION_MS, request.timeoutMs - (performance.now() - started));
  const timer = setTimeout(() => controller.abort(), remaining);
  const onCancel = (): void => controller.abort();
  request.signal.addEventListener("abort", onCancel, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      request.signal.removeEventListener("abort", onCancel);
    },
  };
}

function runModule(context: ModuleContext): Promise<ModuleResult> | ModuleResult {
  switch (context.request.uses) {
    case "builtin:shell":
      return runShell(context);
    case "builtin:container":
      return runContainerModule(context);
    case "builtin:bundle.ingest":
      return runBundleIngest(context);
    case "builtin:noop":
      return runNoop(context);
    default:
      return failedBeforeStart(`unknown module ${JSON.stringify(context.request.uses)}`);
  }
}

/** The masked form of every output name that contains a secret (in any form the masker knows). */
function namesHoldingSecrets(outputs: Record<string, string>, masker: Masker): string[] {
  return Object.keys(outputs)
    .filter((name) => masker.mask(name) !== name)
    .map((name) => JSON.stringify(masker.mask(name)));
}

/** Outputs leave the step like log lines do, so secrets in them are masked too. */
function maskValues(outputs: Record<string, string>, masker: Masker): Record<string, string> {
  return Object.fromEntries(
    Object.entries(outputs).map(([name, value]) => [name, masker.mask(value)]),
  );
}
