/**
 * The JSON shapes of the gateway's REST API, as the CLI reads them: derived (type-only, so the
 * CLI loads no schema library) from the gateway's TypeBox schemas in
 * `services/gateway/src/api-schemas.ts`, which the routes validate with and the OpenAPI
 * document is generated from. State names come from @packrun/contract. Times are RFC 3339
 * strings.
 */
import type {
  ApprovalDecisionSchema,
  ApproveBodySchema,
  ApproveResponseSchema,
  ArtifactJson,
  AttestationResponseSchema,
  DeadLetterJson,
  DeadLetterRetryJson,
  ExportApprovalRequestResponseSchema,
  GateJson,
  ImportApprovalResponseResponseSchema,
  ListArtifactsResponseSchema,
  ListDeadLettersResponseSchema,
  ListPacksResponseSchema,
  ListPackVersionsResponseSchema,
  ListRunsResponseSchema,
  PackRefSchema,
  PackVersionJson,
  ProblemJson,
  PublishPackResponseSchema,
  RetryAllDeadLettersResponseSchema,
  RunEventJson,
  RunJson,
  StepAttemptJson,
  StepJson,
  StepKindName,
  SubmitRunBody,
  SubmitRunResponseSchema,
  VerificationKeysResponseSchema,
} from "@packrun/gateway/api-schemas";
import type { Static } from "typebox";

export {
  type RunState,
  runStates,
  type StepState,
  terminalRunStates as finishedRunStates,
} from "@packrun/contract";

/** Kind of a step node. */
export type StepKind = StepKindName;
/** One attempt at a run step. */
export type StepAttempt = StepAttemptJson;
/** A node of a run's execution graph, in plan order. */
export type Step = StepJson;
/** One decision recorded on an approval gate. */
export type ApprovalDecision = Static<typeof ApprovalDecisionSchema>;
/** An approval or policy gate of a run. */
export type Gate = GateJson;
/** A pack name, version and manifest digest. */
export type PackIdentity = RunJson["pack"];
/** A run of a planned pack (GET /api/runs/{id}). */
export type Run = RunJson;
/** A registered pack by name and optional exact version (default latest). */
export type PackRef = Static<typeof PackRefSchema>;
/** Body of POST /api/runs: exactly one of `manifest` and `pack`. */
export type SubmitRunRequest = SubmitRunBody;
/** Answer of POST /api/runs. */
export type SubmitRunResponse = Static<typeof SubmitRunResponseSchema>;
/** Answer of GET /api/runs. */
export type ListRunsResponse = Static<typeof ListRunsResponseSchema>;
/** One entry of a run's ordered event log: the SSE `data:` and the NDJSON line. */
export type RunEvent = RunEventJson;
/** An artifact a step produced. */
export type Artifact = ArtifactJson;
/** Answer of GET /api/runs/{id}/artifacts. */
export type ListArtifactsResponse = Static<typeof ListArtifactsResponseSchema>;
/** Body of POST /api/runs/{id}/approve. */
export type ApproveRequest = Static<typeof ApproveBodySchema>;
/** Answer of POST /api/runs/{id}/approve. */
export type ApproveResponse = Static<typeof ApproveResponseSchema>;
/** Answer of POST /api/runs/{id}/gates/{gate}/approval-request. */
export type ExportApprovalRequestResponse = Static<typeof ExportApprovalRequestResponseSchema>;
/** Answer of POST /api/approvals/import. */
export type ImportApprovalResponseResponse = Static<typeof ImportApprovalResponseResponseSchema>;
/** Answer of GET /api/runs/{id}/attestation. */
export type AttestationResponse = Static<typeof AttestationResponseSchema>;
/** A published pack version. */
export type PackVersion = PackVersionJson;
/** Answer of POST /api/packs. */
export type PublishPackResponse = Static<typeof PublishPackResponseSchema>;
/** One pack of GET /api/packs. */
export type PackSummary = Static<typeof ListPacksResponseSchema>["packs"][number];
/** Answer of GET /api/packs. */
export type ListPacksResponse = Static<typeof ListPacksResponseSchema>;
/** Answer of GET /api/packs/{name}/versions. */
export type ListPackVersionsResponse = Static<typeof ListPackVersionsResponseSchema>;
/** Answer of GET /api/verification-keys. */
export type VerificationKeysResponse = Static<typeof VerificationKeysResponseSchema>;
/** RFC 9457 problem document; `code` is the stable packrun error code (docs/errors.md). */
export type Problem = ProblemJson;
/** One entry of a problem document's `errors` list. */
export type ProblemError = NonNullable<ProblemJson["errors"]>[number];
/** A step that failed permanently (GET /api/dead-letters). */
export type DeadLetter = DeadLetterJson;
/** Answer of GET /api/dead-letters. */
export type ListDeadLettersResponse = Static<typeof ListDeadLettersResponseSchema>;
/** Answer of POST /api/dead-letters/{id}/retry. */
export type DeadLetterRetry = DeadLetterRetryJson;
/** Answer of POST /api/dead-letters/retry. */
export type RetryAllDeadLettersResponse = Static<typeof RetryAllDeadLettersResponseSchema>;
