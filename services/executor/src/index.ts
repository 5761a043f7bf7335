/** The executor service: runs, steps, queue, workers, reconciler and the evidence sink. */

export { createEvidenceSink, type EvidenceSink } from "./evidence/evidence-sink.ts";
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
} from "./rpc/executor-server.ts";
export type {
  PlanFetcher,
  PlannedPack,
  RunService,
  RunSubmission,
  RunView,
} from "./rpc/run-service.ts";
export type { Reconciler, SweepReport } from "./run/reconciler.ts";
export {
  assertRunTransition,
  assertStepTransition,
  failedStepStates,
  isLegalStepTransition,
  type RunState,
  type StepState,
  terminalRunStates,
  terminalStepStates,
} from "./run/state-machine.ts";
export { executeStep, probeRuntimes, reapOrphans, startSpawnHelper } from "./runtime/index.ts";
export { createFileSecretVault, type FileSecretVaultOptions } from "./secrets/file-secret-vault.ts";
export {
  createMemorySecretVault,
  createRedisSecretVault,
  type SecretVault,
} from "./secrets/secret-vault.ts";
export { executorChannels, outboxChannel, runChangedChannel } from "./store/change-hints.ts";
// createBullmqWorkQueue is its own entry point (`@packrun/executor/bullmq-work-queue`): BullMQ and
// ioredis load only where a Redis queue is used, not in the embedded default.
export { createMemoryWorkQueue } from "./worker/memory-work-queue.ts";
export { defaultStepLimits, type StepRunner, type StepWorker } from "./worker/step-worker.ts";
export type { QueueDepth, WorkItem, WorkQueue } from "./worker/work-queue.ts";
