/**
 * Child process for the worker-crash tests: runs one step given as JSON in PACKRUN_CRASH_REQUEST (a partial
 * request with workdir, stagingRoot, runtime, uses, with, workerId) and prints READY once the
 * step logs "ready". The test then kills this process with SIGKILL, as a crashed worker.
 */
import { executeStep } from "../index.ts";
import type { StepExecutionRequest } from "../types.ts";

const partial = JSON.parse(
  process.env.PACKRUN_CRASH_REQUEST ?? "{}",
) as Partial<StepExecutionRequest>;
const request: StepExecutionRequest = {
  runId: "crash-run",
  stepId: "crash-step",
  attempt: 1,
  uses: "builtin:shell",
  with: {},
  secrets: {},
  workdir: "",
  stagingRoot: "",
  sandbox: { mode: "open", egressAllowlist: [] },
  runtime: "process",
  timeoutMs: 600_000,
  killGraceMs: 1_000,
  limits: { maxLogBytes: 1 << 20, maxLineBytes: 4096 },
  artifacts: [],
  signal: new AbortController().signal,
  onLog: (line) => {
    if (line.text === "ready") process.stdout.write("READY\n");
  },
  ...partial,
};
await executeStep(request);
process.stdout.write("STEP ENDED\n");
