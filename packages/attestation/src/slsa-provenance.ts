import { canonicalJson } from "@packrun/planning";
import { z } from "zod";
import { digestJson, type JsonValue } from "./evidence-json.ts";
import { artifactSubjectName, type Subject, statementType } from "./in-toto.ts";
import type { PackRunPredicate } from "./pack-run-predicate.ts";
import type { RunRecord } from "./run-record.ts";

/** `predicateType` of SLSA Provenance v1 (https://slsa.dev/spec/v1.0/provenance). */
export const slsaProvenancePredicateType = "https://slsa.dev/provenance/v1";

/** `buildType` of a packrun run: how to read externalParameters (docs/evidence.md). */
export const packRunBuildType = "https://packrun.dev/slsa/pack-run/v1";

/** An in-toto ResourceDescriptor: a dependency by URI and digest. */
export interface ResourceDescriptor {
  uri: string;
  digest?: Record<string, string>;
  name?: string;
  annotations?: Record<string, string | boolean>;
}

/** The SLSA Provenance v1 predicate of a run. */
export interface SlsaProvenance {
  buildDefinition: {
    buildType: typeof packRunBuildType;
    externalParameters: {
      pack: { name: string; version: string; digest: string };
      planHash: string;
      /** Non-secret input values by name; secrets are never in a run record, so never here. */
      inputs: Record<string, unknown>;
    };
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version?: Record<string, string> };
    metadata: { invocationId: string; startedOn?: string; finishedOn: string };
  };
}

/** An in-toto Statement v1 carrying SLSA provenance. */
export interface ProvenanceStatement {
  _type: typeof statementType;
  subject: Subject[];
  predicateType: typeof slsaProvenancePredicateType;
  predicate: SlsaProvenance;
}

/** A container image a run used, as its plan names it. */
export interface ContainerImage {
  /** The reference, e.g. `docker.io/library/alpine@sha256:<hex>` or `alpine:3.20`. */
  reference: string;
  /** Steps that run it. */
  stepIds: string[];
}

const hex = (digest: string) => digest.slice("sha256:".length);
const pinnedImage = /@sha256:([0-9a-f]{64})$/;

/**
 * Builder id of runs attested by an executor deployment: a URI naming it.
 * `executor@cluster-a` becomes `https://packrun.dev/builders/executor@cluster-a`.
 */
export function builderIdOf(executorId: string): string {
  return `https://packrun.dev/builders/${encodeURIComponent(executorId).replace(/%40/g, "@")}`;
}

/**
 * The container images of a plan (`builtin:container` steps, nested ones included), with the
 * steps that run them, sorted by reference. A reference built by a template at run time is
 * listed as the template says.
 */
export function containerImagesOf(plan: unknown): ContainerImage[] {
  const images = new Map<string, Set<string>>();
  const visit = (value: unknown) => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    if (value === null || typeof value !== "object") return;
    const record = value as Record<string, unknown>;
    const run = record.run as { uses?: unknown; with?: { image?: unknown } } | undefined;
    if (
      typeof record.id === "string" &&
      run?.uses === "builtin:container" &&
      typeof run.with?.image === "string"
    ) {
      const steps = images.get(run.with.image) ?? new Set<string>();
      steps.add(record.id);
      images.set(run.with.image, steps);
    }
    for (const child of Object.values(record)) visit(child);
  };
  visit((plan as { steps?: unknown } | null)?.steps);
  return [...images]
    .map(([reference, steps]) => ({ reference, stepIds: [...steps].sort() }))
    .sort((a, b) => (a.reference < b.reference ? -1 : a.reference > b.reference ? 1 : 0));
}

/**
 * The resolved dependencies: the pack by its manifest digest, then the container images. An
 * image that ran carries the digest the container engine resolved its reference to (one entry
 * per digest: a tag that moved between attempts shows both); one the plan names but that never
 * ran (a step not reached) carries the digest its reference pins (`…@sha256:<hex>`), or, named
 * by tag only, `annotations.pinned: false` and no digest. Sorted by URI, then digest.
 */
export function resolvedDependenciesOf(
  pack: RunRecord["pack"],
  planned: readonly ContainerImage[],
  ran: NonNullable<RunRecord["images"]> = [],
): ResourceDescriptor[] {
  const byDigest = new Map<string, { reference: string; digest: string; steps: Set<string> }>();
  for (const image of ran) {
    const key = `${image.reference}\0${image.digest}`;
    const entry = byDigest.get(key) ?? { ...image, steps: new Set<string>() };
    entry.steps.add(image.stepId);
    byDigest.set(key, entry);
  }
  const ranReferences = new Set(ran.map((image) => image.reference));
  const images: ResourceDescriptor[] = [
    ...[...byDigest.values()].map((image) => ({
      uri: `oci:${image.reference}`,
      name: `image of ${[...image.steps].sort().join(", ")}`,
      digest: { sha256: hex(image.digest) },
    })),
    ...planned
      .filter((image) => !ranReferences.has(image.reference))
      .map((image): ResourceDescriptor => {
        const pinned = pinnedImage.exec(image.reference)?.[1];
        return {
          uri: `oci:${image.reference}`,
          name: `image of ${image.stepIds.join(", ")}`,
          ...(pinned === undefined
            ? { annotations: { pinned: false } }
            : { digest: { sha256: pinned } }),
        };
      }),
  ].sort((a, b) =>
    a.uri === b.uri
      ? (a.digest?.sha256 ?? "").localeCompare(b.digest?.sha256 ?? "")
      : a.uri < b.uri
        ? -1
        : 1,
  );
  return [
    {
      uri: `pack:${pack.name}@${pack.version}`,
      name: "pack.yaml",
      digest: { sha256: hex(pack.digest) },
    },
    ...images,
  ];
}

/** The provenance's subjects: the run's artifacts, named as in the pack-run statement. */
export function provenanceSubjectsOf(predicate: Pick<PackRunPredicate, "artifacts">): Subject[] {
  const unique = new Map<string, Subject>();
  for (const artifact of predicate.artifacts) {
    const subject = {
      name: artifactSubjectName(artifact),
      digest: { sha256: hex(artifact.digest) },
    };
    unique.set(`${subject.name}\0${subject.digest.sha256}`, subject);
  }
  return [...unique.values()].sort((a, b) =>
    a.name === b.name ? a.digest.sha256.localeCompare(b.digest.sha256) : a.name < b.name ? -1 : 1,
  );
}

/**
 * SLSA Provenance v1 for a run that produced artifacts: the artifacts as subjects; the pack
 * reference, plan hash and non-secret input values as externalParameters; the pack and every
 * container image (by the digest it ran with) as resolvedDependencies; the run id, builder and times as runDetails.
 * @throws Error when the run produced no artifacts (provenance needs a subject)
 */
export function buildProvenanceStatement(
  predicate: PackRunPredicate,
  runRecord: Pick<RunRecord, "inputs" | "images">,
  plan: unknown,
): ProvenanceStatement {
  const subject = provenanceSubjectsOf(predicate);
  if (subject.length === 0) throw new Error("provenance needs at least one artifact");
  return {
    _type: statementType,
    subject,
    predicateType: slsaProvenancePredicateType,
    predicate: {
      buildDefinition: {
        buildType: packRunBuildType,
        externalParameters: {
          pack: predicate.pack,
          planHash: predicate.planHash,
          inputs: { ...runRecord.inputs },
        },
        resolvedDependencies: resolvedDependenciesOf(
          predicate.pack,
          containerImagesOf(plan),
          runRecord.images,
        ),
      },
      runDetails: {
        builder: {
          id: builderIdOf(predicate.executor.id),
          ...(predicate.executor.version === undefined
            ? {}
            : { version: { "packrun-executor": predicate.executor.version } }),
        },
        metadata: {
          invocationId: predicate.runId,
          ...(predicate.startedAt === null ? {} : { startedOn: predicate.startedAt }),
          finishedOn: predicate.finishedAt,
        },
      },
    },
  };
}

/** The signed payload bytes: RFC 8785 canonical JSON (UTF-8), as for the pack-run statement. */
export function serializeProvenanceStatement(statement: ProvenanceStatement): Buffer {
  return Buffer.from(canonicalJson(statement), "utf8");
}

const digestSet = z.record(z.string(), z.string().regex(/^[0-9a-f]+$/));
const resourceDescriptorSchema = z.object({
  uri: z.string(),
  digest: digestSet.optional(),
  name: z.string().optional(),
  annotations: z.record(z.string(), z.union([z.string(), z.boolean()])).optional(),
});

const provenanceStatementSchema = z.object({
  _type: z.literal(statementType),
  subject: z.array(z.object({ name: z.string(), digest: z.object({ sha256: z.string() }) })).min(1),
  predicateType: z.literal(slsaProvenancePredicateType),
  predicate: z.object({
    buildDefinition: z.object({
      buildType: z.literal(packRunBuildType),
      externalParameters: z.object({
        pack: z.object({ name: z.string(), version: z.string(), digest: z.string() }),
        planHash: z.string(),
        inputs: z.record(z.string(), z.unknown()),
      }),
      resolvedDependencies: z.array(resourceDescriptorSchema),
    }),
    runDetails: z.object({
      builder: z.object({
        id: z.string(),
        version: z.record(z.string(), z.string()).optional(),
      }),
      metadata: z.object({
        invocationId: z.string(),
        startedOn: z.string().optional(),
        finishedOn: z.string(),
      }),
    }),
  }),
});

/** Result of {@link parseProvenanceStatement}. */
export type ParsedProvenance =
  | { ok: true; statement: ProvenanceStatement }
  | { ok: false; reason: string };

/** Parses the payload of a provenance envelope. */
export function parseProvenanceStatement(payload: Uint8Array): ParsedProvenance {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    return { ok: false, reason: "payload is not JSON" };
  }
  const result = provenanceStatementSchema.safeParse(value);
  if (!result.success) {
    const first = result.error.issues[0];
    return {
      ok: false,
      reason: `not a packrun SLSA provenance statement: ${first?.path.map(String).join(".") ?? ""}: ${first?.message ?? "invalid"}`,
    };
  }
  return { ok: true, statement: result.data as ProvenanceStatement };
}

/**
 * What is wrong with `statement` as the provenance of the run `predicate` attests: subjects,
 * pack, plan hash, run id, builder and times must be the attested ones, and the pack must be
 * among the resolved dependencies by its digest. Empty when it agrees.
 */
export function provenanceProblems(
  statement: ProvenanceStatement,
  predicate: PackRunPredicate,
): string[] {
  const problems: string[] = [];
  const { buildDefinition, runDetails } = statement.predicate;
  if (JSON.stringify(statement.subject) !== JSON.stringify(provenanceSubjectsOf(predicate))) {
    problems.push("its subjects are not the attested artifacts");
  }
  const { pack, planHash } = buildDefinition.externalParameters;
  if (canonicalJson(pack) !== canonicalJson(predicate.pack)) {
    problems.push(`its pack ${pack.name}@${pack.version} is not the attested one`);
  }
  if (planHash !== predicate.planHash) problems.push(`its planHash ${planHash} is not attested`);
  const inputs = buildDefinition.externalParameters.inputs;
  const inputsAgree =
    Object.keys(inputs).length === predicate.inputs.length &&
    predicate.inputs.every(
      ({ name, digest }) =>
        Object.hasOwn(inputs, name) && digestJson(inputs[name] as JsonValue) === digest,
    );
  if (!inputsAgree) problems.push("its inputs are not the attested input values");
  if (
    !buildDefinition.resolvedDependencies.some(
      (dependency) =>
        dependency.uri === `pack:${predicate.pack.name}@${predicate.pack.version}` &&
        dependency.digest?.sha256 === hex(predicate.pack.digest),
    )
  ) {
    problems.push("the pack is not among its resolvedDependencies by digest");
  }
  if (runDetails.metadata.invocationId !== predicate.runId) {
    problems.push(`its invocationId ${runDetails.metadata.invocationId} is not the run`);
  }
  if (runDetails.builder.id !== builderIdOf(predicate.executor.id)) {
    problems.push(`its builder ${runDetails.builder.id} is not the attested executor`);
  }
  if (
    runDetails.metadata.finishedOn !== predicate.finishedAt ||
    (runDetails.metadata.startedOn ?? null) !== predicate.startedAt
  ) {
    problems.push("its times are not the run's");
  }
  return problems;
}
