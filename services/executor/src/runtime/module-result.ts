import type { LogSink } from "./log-sink.ts";
import type { AttemptLayout } from "./step-env.ts";
import type { HostSupport } from "./support.ts";
import type { StepExecutionRequest, StepOutcome } from "./types.ts";

/** What a module hands back to executeStep, which adds outputs, artifacts and the duration. */
export interface ModuleResult {
  outcome: StepOutcome;
  exitCode: number | null;
  signal: string | null;
  reason: string;
  cpuMicros: number;
  peakMemoryBytes: number;
  /** Outputs produced by the module itself (bundle.ingest). */
  outputs?: Record<string, string>;
  /** The step could write `$PACKRUN_OUTPUT` (shell, container). */
  readsOutputFile: boolean;
  /** Container steps: the image that ran, by reference and resolved digest. */
  image?: ResolvedImage;
}

/** A container image as it ran: the step's reference and the digest podman resolved it to. */
export interface ResolvedImage {
  reference: string;
  /** `sha256:<hex>` of the image manifest. */
  digest: string;
}

/** Everything a module needs to run one attempt. */
export interface ModuleContext {
  request: StepExecutionRequest;
  sink: LogSink;
  layout: AttemptLayout;
  support: HostSupport;
  workerId: string;
}

/** A result for a step that failed before anything ran (bad parameters, missing runtime). */
export function failedBeforeStart(reason: string): ModuleResult {
  return {
    outcome: "failed",
    exitCode: null,
    signal: null,
    reason,
    cpuMicros: 0,
    peakMemoryBytes: 0,
    readsOutputFile: false,
  };
}

/** Outcome and reason of a process that ran, from how it ended. */
export function describeExit(
  exit: {
    exitCode: number | null;
    signal: string | null;
    stoppedFor: "timeout" | "cancel" | null;
    /** The exit status may also mean death by this signal (see SupervisedExit.maybeSignal). */
    maybeSignal?: string | null;
  },
  timeoutText: string,
): { outcome: StepOutcome; reason: string } {
  if (exit.stoppedFor === "timeout")
    return { outcome: "timed_out", reason: `timed out after ${timeoutText}` };
  if (exit.stoppedFor === "cancel") return { outcome: "cancelled", reason: "cancelled" };
  if (exit.exitCode === 0) return { outcome: "succeeded", reason: "exited with code 0" };
  if (exit.exitCode !== null && exit.maybeSignal)
    return {
      outcome: "failed",
      reason: `exited with code ${exit.exitCode}, or was killed by ${exit.maybeSignal} (the sandbox reports both alike)`,
    };
  if (exit.exitCode !== null)
    return { outcome: "failed", reason: `exited with code ${exit.exitCode}` };
  return { outcome: "failed", reason: `killed by signal ${exit.signal ?? "unknown"}` };
}
