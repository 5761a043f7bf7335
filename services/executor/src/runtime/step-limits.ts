/** Default memory of one process or sandbox step (all its processes together): 2 GiB. */
export const DEFAULT_STEP_MEMORY_BYTES = 2 * 1024 ** 3;
/** Default processes and threads of one step at once. */
export const DEFAULT_STEP_PIDS = 1024;
/** Default CPU cores one step may use. */
export const DEFAULT_STEP_CPUS = 1;

/** A step's limits: the request's (from the executor's configuration) or the defaults. */
export interface StepLimits {
  memoryBytes: number;
  pids: number;
  cpus: number;
}

/**
 * Every process and sandbox step is limited, even when the executor sets nothing: a fork bomb,
 * a memory hog or a busy loop ends or slows only its own step. PACKRUN_EXECUTOR_STEP_CPUS sets
 * the CPU share (cores, e.g. 0.5 or 2).
 * @throws Error naming PACKRUN_EXECUTOR_STEP_CPUS when it is not a positive number
 */
export function stepLimits(
  limits: { memoryBytes?: number | undefined; pids?: number | undefined },
  env: NodeJS.ProcessEnv = process.env,
): StepLimits {
  const cpuText = env.PACKRUN_EXECUTOR_STEP_CPUS ?? "";
  const cpus = cpuText === "" ? DEFAULT_STEP_CPUS : Number(cpuText);
  if (!Number.isFinite(cpus) || cpus <= 0 || cpus > 1024)
    throw new Error(
      `PACKRUN_EXECUTOR_STEP_CPUS: expected a number of cores such as 0.5 or 2, got "${cpuText}"`,
    );
  return {
    memoryBytes: limits.memoryBytes ?? DEFAULT_STEP_MEMORY_BYTES,
    pids: limits.pids ?? DEFAULT_STEP_PIDS,
    cpus,
  };
}
