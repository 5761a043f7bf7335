import type { Database } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import type { StepExecutionRequest, StepExecutionResult } from "../runtime/types.ts";
import type { WorkdirSlots } from "../runtime/workdir-slots.ts";
import type { SecretVault } from "../secrets/secret-vault.ts";
import type { ReadyWork } from "../store/run-rows.ts";
import type { ArtifactUploader } from "./artifact-uploader.ts";
import type { LogWriter } from "./log-writer.ts";
import type { VerifiedPlans } from "./verified-plans.ts";
import type { WorkQueue } from "./work-queue.ts";

/** Runs one step attempt on this machine (the runtime module's `executeStep`). */
export type StepRunner = (request: StepExecutionRequest) => Promise<StepExecutionResult>;

/** Options for the step worker (`step-worker.ts`). */
export interface StepWorkerOptions {
  database: Database;
  queue: WorkQueue;
  vault: SecretVault;
  logs: LogWriter;
  logger: Logger;
  runStep: StepRunner;
  /** Where attempt workdirs and run staging areas are created. */
  workRoot: string;
  workerId?: string;
  /** Steps run at once by this worker. */
  concurrency?: number;
  /** A claim is valid this long without a heartbeat. */
  leaseMs?: number;
  /** Running steps of one tenant across all workers; 0 = unlimited. */
  tenantConcurrency?: number;
  killGraceMs?: number;
  limits?: StepExecutionRequest["limits"];
  /** Called with steps that became claimable, to put them on the queue. */
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>;
  /** Called when a run reached a terminal state (secrets cleanup, finalisation). */
  onRunFinished?: (runId: string) => void;
  /** Stores declared artifacts (the evidence service); without it they are hashed only. */
  artifacts?: ArtifactUploader;
  /** Attempt workdirs kept mounted ahead (runtime/workdir-slots.ts); default from the environment. */
  warmWorkdirs?: number;
}

/** The worker's options with their defaults filled in. */
export type ResolvedWorkerOptions = Required<
  Omit<StepWorkerOptions, "onRunFinished" | "workerId" | "artifacts" | "warmWorkdirs">
> &
  Pick<StepWorkerOptions, "onRunFinished" | "artifacts">;

/** What the claim, attempt and report steps of a worker read from it. */
export interface WorkerContext {
  readonly id: string;
  readonly options: ResolvedWorkerOptions;
  /** Plans parsed and hashed by this worker, per run. */
  readonly plans: VerifiedPlans;
  /** Attempt workdirs mounted ahead. */
  readonly workdirs: WorkdirSlots;
  /** True once the worker stopped taking work. */
  draining(): boolean;
}
