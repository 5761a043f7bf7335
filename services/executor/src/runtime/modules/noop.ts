import { failedBeforeStart, type ModuleContext, type ModuleResult } from "../module-result.ts";
import { noopParams, parseParams } from "./params.ts";

/** builtin:noop: succeeds without running anything; logs `message` (masked) when given. */
export function runNoop(context: ModuleContext): ModuleResult {
  const params = parseParams("builtin:noop", noopParams, context.request.with);
  if (!params.ok) return failedBeforeStart(params.reason);
  if (params.value.message !== undefined) context.sink.line("stdout", params.value.message);
  return {
    outcome: "succeeded",
    exitCode: null,
    signal: null,
    reason: "no-op",
    cpuMicros: 0,
    peakMemoryBytes: 0,
    readsOutputFile: false,
  };
}
