/**
 * A step run the way a packrun worker runs it, through the executor's step runtime
 * (`executeStep` with its workdir slots, spawn helper and warm networks), for peers and the
 * runtime-alone measurement: the isolation a step costs, without packrun's queue, database or
 * evidence.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { executeStep } from "../../services/executor/src/runtime/index.ts";
import type { StepExecutionRequest } from "../../services/executor/src/runtime/types.ts";
import { closeWarmNetworks } from "../../services/executor/src/runtime/warm-networks.ts";
import { DEFAULT_STEP_DISK_BYTES } from "../../services/executor/src/runtime/workdir-limit.ts";
import { WorkdirSlots } from "../../services/executor/src/runtime/workdir-slots.ts";
import { defaultStepLimits } from "../../services/executor/src/worker/step-worker.ts";

/** Runs isolated steps; `close` unmounts the prepared workdirs and ends the warm networks. */
export interface IsolatedStepRunner {
  /** Runs `argv` as one step and resolves its exit code (1 when it did not exit normally). */
  run(argv: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

/** Isolated steps of sandbox mode `mode` with the worker's default limits. */
export async function isolatedStepRunner(
  mode: "open" | "sealed",
  workRoot: string,
): Promise<IsolatedStepRunner> {
  const workerId = `bench-${process.pid}`;
  const slots = new WorkdirSlots({
    root: path.join(workRoot, "slots"),
    bytes: DEFAULT_STEP_DISK_BYTES,
    workerId,
  });
  const stagingRoot = path.join(workRoot, "staging");
  await mkdir(stagingRoot, { recursive: true });
  let stepNumber = 0;
  const run = async (argv: readonly string[]): Promise<number> => {
    const slot = await slots.take();
    try {
      const request: StepExecutionRequest = {
        runId: "bench",
        stepId: `s${++stepNumber}`,
        attempt: 1,
        uses: "builtin:shell",
        with: { argv: [...argv] },
        secrets: {},
        workdir: slot.workdir,
        stagingRoot,
        sandbox: { mode, egressAllowlist: [] },
        runtime: mode === "sealed" ? "sandbox" : "process",
        timeoutMs: 60_000,
        killGraceMs: 5_000,
        limits: defaultStepLimits,
        artifacts: [],
        signal: new AbortController().signal,
        workerId,
        onLog: () => {},
      };
      const result = await executeStep(request);
      return result.outcome === "succeeded" ? 0 : (result.exitCode ?? 1);
    } finally {
      slot.release();
    }
  };
  return {
    run,
    close: async () => {
      closeWarmNetworks();
      await slots.close();
    },
  };
}
