/**
 * Step runtimes and built-in modules: everything that runs one step attempt on a worker
 * machine. See docs/runtimes.md for the isolation each runtime gives.
 */
import { runtimeSupport } from "./support.ts";
import type { RuntimeCapabilities } from "./types.ts";

export { DEFAULT_WORKER_ID, executeStep } from "./execute-step.ts";
export { startSpawnHelper } from "./launcher.ts";
export { reapOrphans } from "./reap-orphans.ts";
export type {
  ArtifactRecord,
  LogLine,
  ModuleName,
  RuntimeCapabilities,
  RuntimeKind,
  StepExecutionRequest,
  StepExecutionResult,
  StepOutcome,
} from "./types.ts";

/** What this machine supports (bwrap present and working, podman present and working), probed once. */
export async function probeRuntimes(): Promise<RuntimeCapabilities> {
  const support = await runtimeSupport();
  return {
    sandbox: support.sandbox,
    container: support.container,
    details: [...support.details],
    pidNamespace: support.pidNamespace,
    metrics: support.time !== null,
  };
}
