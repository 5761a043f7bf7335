/** The Task Pack manifest (`pack.yaml`) as written by people; see docs/task-pack-format.md. */
export interface PackManifest {
  apiVersion: "stellaops.io/pack.v1";
  kind: "TaskPack";
  metadata: PackMetadata;
  spec: PackSpec;
}

export interface PackMetadata {
  name: string;
  /** Semantic version, e.g. "1.4.0". */
  version: string;
  description?: string;
  tags?: string[];
}

export interface PackSpec {
  inputs?: InputDeclaration[];
  secrets?: SecretDeclaration[];
  approvals?: ApprovalDeclaration[];
  policies?: PolicyDeclaration[];
  failure?: { retries?: RetryPolicyDeclaration };
  /**
   * Run deadline, a duration such as "30m": the whole run may take at most this long from its
   * start; then running steps are stopped as on a step timeout and the run ends `timed_out`.
   */
  timeout?: string | number;
  sandbox?: { mode?: SandboxMode; egressAllowlist?: string[] };
  steps: StepDeclaration[];
  outputs?: OutputDeclaration[];
}

export type InputType = "string" | "number" | "integer" | "boolean" | "object" | "array";
export type SandboxMode = "open" | "sealed";

export interface InputDeclaration {
  name: string;
  type?: InputType;
  required?: boolean;
  default?: unknown;
  description?: string;
  /** JSON Schema 2020-12 the value must satisfy. */
  schema?: Record<string, unknown>;
}

export interface SecretDeclaration {
  name: string;
  description?: string;
}

export interface ApprovalDeclaration {
  id: string;
  /** Grants (roles or groups) an approver must hold; any one suffices. */
  grants?: string[];
  /** Distinct approvers needed; default 1. */
  required?: number;
  /** Duration such as "24h"; absent means the request never expires. */
  expiresAfter?: string | number;
  reason?: string;
}

export interface PolicyDeclaration {
  name: string;
  /** CEL expression that must evaluate to true for the gate to pass. */
  expression: string;
  description?: string;
}

export interface RetryPolicyDeclaration {
  maxAttempts?: number;
  backoffSeconds?: number;
  backoff?: "fixed" | "exponential";
  maxBackoffSeconds?: number;
  /** true (= 0.5) or a fraction in [0, 1] of each delay that is randomised. */
  jitter?: boolean | number;
}

export interface StepDeclaration {
  id: string;
  name?: string;
  when?: string | boolean;
  timeout?: string | number;
  retries?: RetryPolicyDeclaration;
  run?: RunDeclaration;
  parallel?: ParallelDeclaration;
  map?: MapDeclaration;
  gate?: GateDeclaration;
}

export interface RunDeclaration {
  uses: string;
  with?: Record<string, unknown>;
  /** Files the step produces that are hashed and kept as artifacts. */
  artifacts?: { name: string; path: string }[];
  /** Typed outputs by name; outputs not declared here are strings. */
  outputs?: Record<string, StepOutputDeclaration>;
}

/** The type of one output a run step writes to `$PACKRUN_OUTPUT`. */
export type StepOutputType = "string" | "json";

/** A declared step output: its type and, for JSON, an optional JSON Schema the value must satisfy. */
export interface StepOutputDeclaration {
  /** Default "string", or "json" when a schema is given. */
  type?: StepOutputType;
  /** JSON Schema 2020-12 the parsed value must satisfy (json outputs only). */
  schema?: Record<string, unknown> | boolean;
  description?: string;
}

export interface ParallelDeclaration {
  steps: StepDeclaration[];
  maxParallel?: number;
  continueOnError?: boolean;
}

export interface MapDeclaration {
  /** A list, or a template that evaluates to one. */
  items: unknown[] | string;
  step: StepDeclaration;
  maxParallel?: number;
  continueOnError?: boolean;
}

export interface GateDeclaration {
  approval?: { id: string; message?: string };
  policy?: { policy: string; parameters?: Record<string, unknown>; failAction?: "fail" | "warn" };
}

export interface OutputDeclaration {
  name: string;
  type: "file" | "object";
  path?: string;
  expression?: string;
}
