/**
 * The JSON shapes of the gateway's REST API, type-only from the gateway's TypeBox schemas
 * (services/gateway/src/api-schemas.ts), which the routes validate with and the OpenAPI document
 * is generated from: a changed schema fails the console's type check.
 */
import type {
  ApproveResponseSchema,
  ArtifactJson,
  AttestationResponseSchema,
  GateJson,
  GetPackVersionResponseSchema,
  ListArtifactsResponseSchema,
  ListPacksResponseSchema,
  ListPackVersionsResponseSchema,
  ListRunsResponseSchema,
  PackVersionJson,
  ProblemJson,
  RunEventJson,
  RunJson,
  RunStateName,
  SimulatedStepSchema,
  SimulateResponseSchema,
  StepAttemptJson,
  StepJson,
  StepStateName,
  SubmitRunBody,
  SubmitRunResponseSchema,
} from "@packrun/gateway/api-schemas";
import type { Static } from "typebox";

export type Run = RunJson;
export type Step = StepJson;
export type StepAttempt = StepAttemptJson;
export type Gate = GateJson;
export type RunState = RunStateName;
export type StepState = StepStateName;
export type RunEvent = RunEventJson;
export type Artifact = ArtifactJson;
export type Problem = ProblemJson;
export type PackVersion = PackVersionJson;
export type SubmitRunRequest = SubmitRunBody;
export type SubmitRunResponse = Static<typeof SubmitRunResponseSchema>;
export type ListRunsResponse = Static<typeof ListRunsResponseSchema>;
export type ListArtifactsResponse = Static<typeof ListArtifactsResponseSchema>;
export type AttestationResponse = Static<typeof AttestationResponseSchema>;
export type ApproveResponse = Static<typeof ApproveResponseSchema>;
export type ListPacksResponse = Static<typeof ListPacksResponseSchema>;
export type ListPackVersionsResponse = Static<typeof ListPackVersionsResponseSchema>;
export type GetPackVersionResponse = Static<typeof GetPackVersionResponseSchema>;
export type SimulateResponse = Static<typeof SimulateResponseSchema>;
/** A simulated step; `children` has the same shape (the schema leaves it open). */
export type SimulatedStep = Omit<Static<typeof SimulatedStepSchema>, "children"> & {
  children: SimulatedStep[];
};
