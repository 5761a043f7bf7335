import { PackrunError } from "@packrun/errors";
import { z } from "zod";
import { digestJson } from "./evidence-json.ts";
import {
  type RunRecord,
  runRecordSchema,
  runStatusSchema,
  sha256DigestSchema,
} from "./run-record.ts";

/** An artifact the run stored, as the predicate binds it. */
export interface AttestedArtifact {
  name: string;
  /** "" for run-level artifacts. */
  stepId: string;
  /** "file" or "object". */
  type: string;
  digest: string;
  sizeBytes: number;
  sourcePath: string;
}

/** What the predicate says about the run's event transcript (transcript.ndjson). */
export interface TranscriptSummary {
  /** Events 1..events, all of them. */
  events: number;
  sizeBytes: number;
  /** `sha256:<hex>` of transcript.ndjson. */
  digest: string;
}

const artifactSchema = z.strictObject({
  name: z.string(),
  stepId: z.string(),
  type: z.string(),
  digest: sha256DigestSchema,
  sizeBytes: z.int().min(0),
  sourcePath: z.string(),
});

const record = runRecordSchema.shape;

/** Schema of the pack-run predicate (v1); see docs/evidence.md for field meanings. */
export const packRunPredicateSchema = z.strictObject({
  runId: z.string().min(1),
  status: runStatusSchema,
  pack: record.pack,
  planHash: sha256DigestSchema,
  inputs: z.array(z.strictObject({ name: z.string(), digest: sha256DigestSchema })),
  secrets: z.array(z.strictObject({ name: z.string(), redacted: z.literal(true) })),
  outputs: z.array(
    z.strictObject({
      name: z.string(),
      type: z.enum(["file", "object"]),
      digest: sha256DigestSchema,
      path: z.string().optional(),
    }),
  ),
  artifacts: z.array(artifactSchema),
  steps: record.steps,
  approvals: record.approvals,
  policyDecisions: record.policyDecisions,
  schedule: record.schedule,
  startedAt: record.startedAt,
  finishedAt: record.finishedAt,
  executor: record.executor,
  rerunOf: record.rerunOf,
  transcript: z.strictObject({
    events: z.int().min(1),
    sizeBytes: z.int().min(0),
    digest: sha256DigestSchema,
  }),
});

/** The pack-run predicate: what an attestation says about one run. */
export type PackRunPredicate = z.infer<typeof packRunPredicateSchema>;

const byName = <T extends { name: string }>(a: T, b: T) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/**
 * Builds the predicate from the executor's run record and what the evidence service itself
 * knows (stored artifacts, the transcript). Input and output values are reduced to digests;
 * secrets to their names.
 * @throws PackrunError RUN_RECORD_INVALID when an object output's digest disagrees with its value
 */
export function buildPredicate(
  runRecord: RunRecord,
  evidence: { artifacts: readonly AttestedArtifact[]; transcript: TranscriptSummary },
): PackRunPredicate {
  const outputs = runRecord.outputs.map((output) => {
    let digest = output.digest;
    if (output.type === "object") {
      const computed = digestJson(output.value);
      if (digest !== undefined && digest !== computed) {
        throw new PackrunError(
          "RUN_RECORD_INVALID",
          `run_record.outputs: ${output.name} has digest ${digest} but its value digests to ${computed}`,
        );
      }
      digest = computed;
    }
    return {
      name: output.name,
      type: output.type,
      digest: digest as string,
      ...(output.path === undefined ? {} : { path: output.path }),
    };
  });
  const artifacts = [...evidence.artifacts].sort((a, b) =>
    a.stepId === b.stepId
      ? byName(a, b) || (a.digest < b.digest ? -1 : 1)
      : a.stepId < b.stepId
        ? -1
        : 1,
  );
  return {
    runId: runRecord.runId,
    status: runRecord.status,
    pack: runRecord.pack,
    planHash: runRecord.planHash,
    inputs: Object.entries(runRecord.inputs)
      .map(([name, value]) => ({ name, digest: digestJson(value) }))
      .sort(byName),
    secrets: [...new Set(runRecord.secrets)]
      .sort()
      .map((name) => ({ name, redacted: true as const })),
    outputs: outputs.sort(byName),
    artifacts: artifacts.map((artifact) => ({
      name: artifact.name,
      stepId: artifact.stepId,
      type: artifact.type,
      digest: artifact.digest,
      sizeBytes: artifact.sizeBytes,
      sourcePath: artifact.sourcePath,
    })),
    steps: runRecord.steps,
    approvals: runRecord.approvals,
    policyDecisions: runRecord.policyDecisions,
    ...(runRecord.schedule === undefined ? {} : { schedule: runRecord.schedule }),
    startedAt: runRecord.startedAt,
    finishedAt: runRecord.finishedAt,
    executor: runRecord.executor,
    ...(runRecord.rerunOf === undefined ? {} : { rerunOf: runRecord.rerunOf }),
    transcript: { ...evidence.transcript },
  };
}
