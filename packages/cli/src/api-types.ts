/**
 * The JSON shapes of the gateway's REST API, as the CLI reads them. The source of truth is
 * `services/gateway/src/api-schemas.ts` (TypeBox); these interfaces mirror it field for field so
 * the CLI needs no schema library. Times are RFC 3339 strings.
 */

/** State of a run. */
export type RunState =
  | "queued"
  | "running"
  | "awaiting-approval"
  | "succeeded"
  | "failed"
  | "cancelled";

/** Every run state, in lifecycle order (what `runs list --state` accepts). */
export const runStates: readonly RunState[] = [
  "queued",
  "running",
  "awaiting-approval",
  "succeeded",
  "failed",
  "cancelled",
];

/** Run states after which nothing changes any more. */
export const finishedRunStates: ReadonlySet<RunState> = new Set([
  "succeeded",
  "failed",
  "cancelled",
]);

/** State of a step (docs/state-machine.md). */
export type StepState =
  | "pending"
  | "running"
  | "succeeded"
  | "failed"
  | "timed-out"
  | "cancelled"
  | "skipped"
  | "awaiting-approval"
  | "rejected"
  | "expired";

/** Kind of a step node. */
export type StepKind = "run" | "parallel" | "map" | "approval-gate" | "policy-gate";

/** One attempt at a run step. */
export interface StepAttempt {
  attempt: number;
  state: StepState;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  reason?: string;
  workerId?: string;
  cpuMicros?: number;
  peakMemoryBytes?: number;
}

/** A node of a run's execution graph, in plan order. */
export interface Step {
  id: string;
  /** The enclosing parallel or map step. */
  parentId?: string;
  kind: StepKind;
  state: StepState;
  attempt: number;
  maxAttempts: number;
  nextAttemptAt?: string;
  reason?: string;
  exitCode?: number;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  outputs?: Record<string, unknown>;
  attempts: StepAttempt[];
}

/** One decision recorded on an approval gate. */
export interface ApprovalDecision {
  approver: string;
  approved: boolean;
  comment?: string;
  decidedAt?: string;
}

/** An approval or policy gate of a run. */
export interface Gate {
  stepId: string;
  /** Approval id (spec.approvals) or policy name. */
  gateId: string;
  kind: "approval" | "policy";
  state: StepState;
  requiredApprovals: number;
  /** Groups an approver must hold one of; empty means any approver. */
  grants: string[];
  decisions: ApprovalDecision[];
  expiresAt?: string;
  message?: string;
}

/** A pack name, version and manifest digest. */
export interface PackIdentity {
  name: string;
  version: string;
  digest: string;
}

/** A run of a planned pack (GET /api/runs/{id}). */
export interface Run {
  id: string;
  pack: PackIdentity;
  planHash: string;
  state: RunState;
  priority: number;
  reason?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  submittedBy: string;
  labels: Record<string, string>;
  outputs?: Record<string, unknown>;
  /** Empty in list responses. */
  steps: Step[];
  /** Empty in list responses. */
  gates: Gate[];
  /** Ids of the approval gates awaiting a decision now. */
  pendingGates: string[];
}

/** A registered pack by name and optional exact version (default latest). */
export interface PackRef {
  name: string;
  version?: string;
}

/** Body of POST /api/runs: exactly one of `manifest` and `pack`. */
export interface SubmitRunRequest {
  manifest?: string;
  pack?: PackRef;
  inputs?: Record<string, unknown>;
  secrets?: Record<string, string>;
  priority?: number;
  idempotencyKey?: string;
  labels?: Record<string, string>;
}

/** Answer of POST /api/runs. */
export interface SubmitRunResponse {
  run: Run;
  /** False when the idempotency key matched an existing run. */
  created: boolean;
}

/** Answer of GET /api/runs. */
export interface ListRunsResponse {
  runs: Run[];
  nextPageToken?: string;
}

/** One entry of a run's ordered event log: the SSE `data:` and the NDJSON line. */
export interface RunEvent {
  sequence: number;
  time: string;
  level: "debug" | "info" | "warn" | "error";
  /** For example step.log, step.started, run.succeeded. */
  type: string;
  stepId?: string;
  message: string;
  metadata?: Record<string, unknown>;
}

/** An artifact a step produced. */
export interface Artifact {
  stepId: string;
  name: string;
  type: string;
  /** sha256:<hex> of the content. */
  digest: string;
  sizeBytes: number;
  sourcePath?: string;
  status: string;
  createdAt?: string;
  downloadUrl: string;
}

/** Answer of GET /api/runs/{id}/artifacts. */
export interface ListArtifactsResponse {
  artifacts: Artifact[];
}

/** Body of POST /api/runs/{id}/approve. */
export interface ApproveRequest {
  gateId?: string;
  /** False rejects (default true). */
  approve?: boolean;
  comment?: string;
}

/** Answer of POST /api/runs/{id}/approve. */
export interface ApproveResponse {
  gate: Gate;
  /** False when this approver's identical decision was already recorded. */
  recorded: boolean;
  runState: RunState;
}

/** Answer of GET /api/runs/{id}/attestation. */
export interface AttestationResponse {
  runId: string;
  keyId: string;
  createdAt?: string;
  envelope: Record<string, unknown>;
}

/** A published pack version. */
export interface PackVersion {
  name: string;
  version: string;
  digest: string;
  description?: string;
  tags: string[];
  publishedAt?: string;
  publishedBy: string;
}

/** Answer of POST /api/packs. */
export interface PublishPackResponse {
  pack: PackVersion;
  /** False when the identical manifest was already published. */
  created: boolean;
}

/** One pack of GET /api/packs. */
export interface PackSummary {
  name: string;
  latestVersion: string;
  versionCount: number;
}

/** Answer of GET /api/packs. */
export interface ListPacksResponse {
  packs: PackSummary[];
  nextPageToken?: string;
}

/** Answer of GET /api/packs/{name}/versions. */
export interface ListPackVersionsResponse {
  versions: PackVersion[];
  nextPageToken?: string;
}

/** Answer of GET /api/verification-keys. */
export interface VerificationKeysResponse {
  keys: { keyId: string; algorithm: string; publicKeyPem: string; active: boolean }[];
}

/** One entry of a problem document's `errors` list. */
export interface ProblemError {
  /** JSON Pointer into the request, or a YAML path. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** RFC 9457 problem document; `code` is the stable packrun error code (docs/errors.md). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  code: string;
  errors?: ProblemError[];
}
