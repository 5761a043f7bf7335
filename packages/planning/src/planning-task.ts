import type { ErrorCode } from "@packrun/errors";
import type { PlanOptions, PlanResult } from "./build-plan.ts";
import type { Diagnostic } from "./diagnostic.ts";
import type { PackLimits } from "./limits.ts";
import type { PackMetadata } from "./manifest-types.ts";
import type { PlannedStep, RuntimeValue } from "./plan-types.ts";

/** A plan without its parsed manifest model (which does not cross threads). */
export type PlannedPack = Omit<PlanResult, "model">;

/**
 * The work itself: plan a manifest, or only validate it and read its metadata; or, at run time,
 * evaluate what the plan left to run time (`when` and templates over step outputs, map items,
 * policy expressions).
 */
export type PlanningJob =
  | { kind: "plan"; text: string; options: PlanOptions }
  | { kind: "inspect"; text: string; limits?: Partial<PackLimits> }
  | { kind: "evaluate"; value: RuntimeValue; bindings: Record<string, unknown> }
  | { kind: "resolve"; value: unknown; bindings: Record<string, unknown>; text: boolean }
  | { kind: "expression"; source: string; bindings: Record<string, unknown> }
  | {
      kind: "expand";
      template: PlannedStep;
      mapId: string;
      items: readonly unknown[];
      inputs: Record<string, unknown>;
    };

/** What the pool sends a planning thread. */
export interface PlanningTask {
  job: PlanningJob;
  /** One Int32 the thread sets to 1 (and notifies) when it starts the task: its clock starts then. */
  started: SharedArrayBuffer;
}

/** A planning thread's answer: the result, or the refusal as plain data. */
export type PlanningTaskResult =
  | { ok: true; kind: "plan"; planned: PlannedPack }
  | { ok: true; kind: "inspect"; metadata: PackMetadata }
  | { ok: true; kind: "value"; value: unknown }
  | { ok: false; kind: "expression"; message: string }
  | { ok: false; kind: "validation"; diagnostics: Diagnostic[] }
  | { ok: false; kind: "packrun"; code: ErrorCode; message: string };
