/** The executor service: runs, steps, queue, workers, reconciler and the evidence sink. */
export { createBullmqWorkQueue } from "./bullmq-work-queue.ts";
export { executorChannels, outboxChannel, runChangedChannel } from "./change-hints.ts";
export { createEvidenceSink, type EvidenceSink } from "./evidence-sink.ts";
export {
  defaultExecutorPort,
  type ExecutorConfig,
  type ExecutorLimits,
  type ExecutorRole,
  loadExecutorConfig,
  loadExecutorLimits,
} from "./executor-config.ts";
export {
  type Executor,
  type ExecutorOptions,
  executorMigrationsDir,
  executorSchema,
  plannerPlanFetcher,
  startExecutor,
} from "./executor-server.ts";
export { createFileSecretVault, type FileSecretVaultOptions } from "./file-secret-vault.ts";
export { createMemoryWorkQueue } from "./memory-work-queue.ts";
export type { Reconciler, SweepReport } from "./reconciler.ts";
export type {
  PlanFetcher,
  PlannedPack,
  RunService,
  RunSubmission,
  RunView,
} from "./run-service.ts";
export { executeStep, probeRuntimes, reapOrphans } from "./runtime/index.ts";
export {
  createMemorySecretVault,
  createRedisSecretVault,
  type SecretVault,
} from "./secret-vault.ts";
export {
  assertRunTransition,
  assertStepTransition,
  failedStepStates,
  isLegalStepTransition,
  type RunState,
  type StepState,
  terminalRunStates,
  terminalStepStates,
} from "./state-machine.ts";
export { defaultStepLimits, type StepRunner, type StepWorker } from "./step-worker.ts";
export type { QueueDepth, WorkItem, WorkQueue } from "./work-queue.ts";
