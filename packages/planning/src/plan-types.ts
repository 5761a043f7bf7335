import type { SandboxMode } from "./manifest-types.ts";

/**
 * A value only known at run time: the original template or expression, evaluated by the
 * executor when the step is reached.
 */
export interface RuntimeValue {
  $runtime: string;
}

/** True for a {@link RuntimeValue}. */
export function isRuntimeValue(value: unknown): value is RuntimeValue {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.hasOwn(value, "$runtime")
  );
}

/** Normalised retry policy of a step (pack defaults, then enclosing steps, then its own). */
export interface FailurePolicy {
  maxAttempts: number;
  backoffSeconds: number;
  backoff: "fixed" | "exponential";
  /** Cap on any single delay; null = uncapped. */
  maxBackoffSeconds: number | null;
  /** Fraction (0..1) of each delay that is randomised. */
  jitter: number;
}

export type PlannedStepKind = "run" | "parallel" | "map" | "approval-gate" | "policy-gate";

interface PlannedStepBase {
  /** Declared id, or `<mapId>[<index>]::<templateId>` for map children. */
  id: string;
  name: string;
  kind: PlannedStepKind;
  /** Enclosing parallel or map step; null at top level. */
  parentId: string | null;
  /** false = skipped; a RuntimeValue = decided by `when` at run time. */
  enabled: boolean | RuntimeValue;
  /** Why the step is skipped, when that is known at plan time. */
  skipReason: string | null;
  timeoutSeconds: number | null;
  failure: FailurePolicy;
}

export interface PlannedRunStep extends PlannedStepBase {
  kind: "run";
  run: {
    uses: string;
    with: Record<string, unknown>;
    artifacts: { name: string; path: string }[];
    /** Declared typed outputs; absent when the step declares none (every output is a string). */
    outputs?: Record<string, PlannedStepOutput>;
  };
}

/** A declared step output as planned: its type and the JSON Schema of a json output (or null). */
export interface PlannedStepOutput {
  type: "string" | "json";
  schema: Record<string, unknown> | boolean | null;
}

export interface PlannedParallelStep extends PlannedStepBase {
  kind: "parallel";
  parallel: { maxParallel: number; continueOnError: boolean; steps: PlannedStep[] };
}

export interface PlannedMapStep extends PlannedStepBase {
  kind: "map";
  map: {
    /** The items, or a RuntimeValue when they depend on earlier steps. */
    items: unknown[] | RuntimeValue;
    maxParallel: number;
    continueOnError: boolean;
    /** Expanded children; empty while the items are a RuntimeValue. */
    steps: PlannedStep[];
    /** Declared id of the step template (children are `<mapId>[<index>]::<templateId>`). */
    templateId: string;
    /** The planned template while the items are a RuntimeValue; null once expanded. */
    template: PlannedStep | null;
  };
}

export interface PlannedApprovalGate extends PlannedStepBase {
  kind: "approval-gate";
  gate: { approvalId: string; message: string };
}

export interface PlannedPolicyGate extends PlannedStepBase {
  kind: "policy-gate";
  gate: { policy: string; parameters: Record<string, unknown>; failAction: "fail" | "warn" };
}

export type PlannedStep =
  | PlannedRunStep
  | PlannedParallelStep
  | PlannedMapStep
  | PlannedApprovalGate
  | PlannedPolicyGate;

export interface PlannedApproval {
  id: string;
  grants: string[];
  required: number;
  expiresAfterSeconds: number | null;
  reason: string;
}

export interface PlannedOutput {
  name: string;
  type: "file" | "object";
  path: unknown;
  expression: unknown;
}

/**
 * The normalised execution graph of a pack with its inputs: what `planHash` covers.
 * Top-level steps run in order; see docs/planning.md.
 */
export interface Plan {
  planVersion: 1;
  pack: { name: string; version: string };
  inputs: Record<string, unknown>;
  secrets: string[];
  sandbox: { mode: SandboxMode; egressAllowlist: string[] };
  /**
   * The run deadline in seconds (`spec.timeout`). Absent without one, so plans of packs that
   * set none keep the hash they always had.
   */
  timeoutSeconds?: number;
  approvals: PlannedApproval[];
  policies: { name: string; expression: string }[];
  steps: PlannedStep[];
  outputs: PlannedOutput[];
}
