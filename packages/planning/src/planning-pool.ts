import { availableParallelism } from "node:os";
import { PackrunError } from "@packrun/errors";
import { Piscina } from "piscina";
import type { PlanOptions } from "./build-plan.ts";
import { PackValidationError } from "./diagnostic.ts";
import { ExpressionError } from "./expression.ts";
import type { PackLimits } from "./limits.ts";
import type { PackMetadata } from "./manifest-types.ts";
import type { PlannedStep, RuntimeValue } from "./plan-types.ts";
import type {
  PlannedPack,
  PlanningJob,
  PlanningTask,
  PlanningTaskResult,
} from "./planning-task.ts";

export type { PlannedPack } from "./planning-task.ts";

/** Limits of the planning threads. */
export interface PlanningPoolOptions {
  /** Threads planning at once (default: the machine's cores, at least 1, at most 4). */
  threads?: number;
  /** Most wall time one manifest may take to plan; the thread is stopped after it. Default 10 s. */
  timeoutMs?: number;
  /** Most heap one planning thread may use, in MiB; over it the thread dies. Default 512. */
  memoryMb?: number;
}

/** Plans manifests, and evaluates what plans left to run time, in worker threads, off the caller's event loop. */
export interface PlanningPool {
  /** As planPack, without the parsed model; throws PackValidationError / PackrunError. */
  plan(text: string, options?: PlanOptions): Promise<PlannedPack>;
  /** As loadManifest, returning only the manifest's metadata. */
  inspect(text: string, limits?: Partial<PackLimits>): Promise<PackMetadata>;
  /** As evaluateRuntimeValue (a `when` or template left to run time); throws ExpressionError. */
  evaluateRuntimeValue(value: RuntimeValue, bindings: Record<string, unknown>): Promise<unknown>;
  /** As resolveRuntimeValues; throws ExpressionError. */
  resolveRuntimeValues(
    value: unknown,
    bindings: Record<string, unknown>,
    options?: { text?: boolean },
  ): Promise<unknown>;
  /** Parses and evaluates a bare CEL expression (a policy); throws ExpressionError. */
  evaluateExpression(source: string, bindings: Record<string, unknown>): Promise<unknown>;
  /** As expandMapTemplate for every item, in order; throws ExpressionError. */
  expandMapTemplates(
    template: PlannedStep,
    mapId: string,
    items: readonly unknown[],
    inputs: Record<string, unknown>,
  ): Promise<PlannedStep[]>;
  close(): Promise<void>;
}

/**
 * A pool of planning threads. Parsing, validating and planning run user-supplied YAML and CEL:
 * each evaluation has its own budget of iterations and time (expression-budget.ts), but work
 * outside comprehensions (operators over large values) and the sum over a whole manifest are not
 * interrupted there. In a thread that work can neither block the service's event loop (every
 * other tenant's requests) nor take more than `timeoutMs` (the thread is terminated) or
 * `memoryMb` of heap (the thread dies, not the service). Either ends as PACK_LIMIT.
 */
export function createPlanningPool(options: PlanningPoolOptions = {}): PlanningPool {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const memoryMb = options.memoryMb ?? 512;
  const threads = options.threads ?? Math.min(4, Math.max(1, availableParallelism()));
  const pool = new Piscina<PlanningTask, PlanningTaskResult>({
    filename: new URL("./planning-thread.ts", import.meta.url).href,
    // Every thread started (and its planning modules loaded) up front and kept: a thread started
    // on demand would keep a request waiting for half a second.
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: 32 },
  });

  async function run(job: PlanningJob): Promise<PlanningTaskResult> {
    // The time limit counts from when a thread starts the task, not from when it was queued
    // behind other tenants' plans (or a thread still loading the planning modules).
    const started = new Int32Array(new SharedArrayBuffer(4));
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const waiting = Atomics.waitAsync(started, 0, 0);
    void (waiting.async ? waiting.value : Promise.resolve()).then(() => {
      if (!controller.signal.aborted) timer = setTimeout(() => controller.abort(), timeoutMs);
    });
    let result: PlanningTaskResult;
    try {
      result = await pool.run(
        { job, started: started.buffer as SharedArrayBuffer },
        { signal: controller.signal },
      );
    } catch (error) {
      throw limitError(error, timeoutMs, memoryMb);
    } finally {
      clearTimeout(timer);
      // Settles the waitAsync promise of a task that never started (pool closed).
      controller.abort();
      Atomics.notify(started, 0);
    }
    if (result.ok) return result;
    if (result.kind === "validation") throw new PackValidationError(result.diagnostics);
    if (result.kind === "expression") throw new ExpressionError(result.message);
    throw new PackrunError(result.code, result.message);
  }

  async function evaluate(job: PlanningJob): Promise<unknown> {
    const result = await run(job);
    if (result.ok && result.kind === "value") return result.value;
    throw new Error(`planning thread answered a ${job.kind} task with another kind`);
  }

  return {
    async plan(text, planOptions = {}) {
      const result = await run({ kind: "plan", text, options: planOptions });
      if (result.ok && result.kind === "plan") return result.planned;
      throw new Error("planning thread answered a plan task with another kind");
    },
    async inspect(text, limits) {
      const result = await run({ kind: "inspect", text, ...(limits ? { limits } : {}) });
      if (result.ok && result.kind === "inspect") return result.metadata;
      throw new Error("planning thread answered an inspect task with another kind");
    },
    evaluateRuntimeValue: (value, bindings) => evaluate({ kind: "evaluate", value, bindings }),
    resolveRuntimeValues: (value, bindings, options = {}) =>
      evaluate({ kind: "resolve", value, bindings, text: options.text === true }),
    evaluateExpression: (source, bindings) => evaluate({ kind: "expression", source, bindings }),
    expandMapTemplates: async (template, mapId, items, inputs) =>
      (await evaluate({ kind: "expand", template, mapId, items, inputs })) as PlannedStep[],
    close: () => pool.close({ force: true }),
  };
}

/** A thread stopped for time or memory, as the caller's error. */
function limitError(error: unknown, timeoutMs: number, memoryMb: number): Error {
  const name = error instanceof Error ? error.name : "";
  const code = (error as { code?: string } | null)?.code;
  if (name === "AbortError" || name === "TimeoutError")
    return new PackrunError(
      "PACK_LIMIT",
      `planning this manifest with these inputs took longer than ${timeoutMs} ms, the planner's limit; simplify its expressions or pass less data`,
    );
  if (code === "ERR_WORKER_OUT_OF_MEMORY")
    return new PackrunError(
      "PACK_LIMIT",
      `planning this manifest with these inputs needed more than ${memoryMb} MiB, the planner's limit; simplify its expressions or pass less data`,
    );
  return error instanceof Error ? error : new Error(String(error));
}

let shared: PlanningPool | undefined;
let sharedOptions: PlanningPoolOptions = {};

/**
 * Sizes the process's shared pool before its first use: a process running every service (the
 * embedded default) plans with one small pool rather than one per service at the machine's size.
 * No effect once the shared pool runs (a second stack started in the same process uses it).
 */
export function configureSharedPlanningPool(options: PlanningPoolOptions): void {
  sharedOptions = options;
}

/** One pool per process (default limits unless configured), for callers that do not manage their own. */
export function sharedPlanningPool(): PlanningPool {
  shared ??= createPlanningPool(sharedOptions);
  return shared;
}
