import { canonicalJson } from "@packrun/planning";
import { z } from "zod";
import { type PackRunPredicate, packRunPredicateSchema } from "./pack-run-predicate.ts";

/** `_type` of an in-toto Statement v1. */
export const statementType = "https://in-toto.io/Statement/v1";
/** `predicateType` of packrun's run attestation. */
export const packRunPredicateType = "https://packrun.dev/attestation/pack-run/v1";
/** DSSE payloadType of an in-toto Statement. */
export const inTotoPayloadType = "application/vnd.in-toto+json";

/** An in-toto ResourceDescriptor naming a subject by SHA-256 digest. */
export interface Subject {
  name: string;
  digest: { sha256: string };
}

/** An in-toto Statement v1 carrying a pack-run predicate. */
export interface PackRunStatement {
  _type: typeof statementType;
  subject: Subject[];
  predicateType: typeof packRunPredicateType;
  predicate: PackRunPredicate;
}

const hex = (digest: string) => digest.slice("sha256:".length);

/** Subject name of an artifact: `artifacts/<stepId>/<name>` (or `artifacts/<name>` without step). */
export function artifactSubjectName(artifact: { stepId: string; name: string }): string {
  return artifact.stepId === ""
    ? `artifacts/${artifact.name}`
    : `artifacts/${artifact.stepId}/${artifact.name}`;
}

/**
 * The statement's subjects: the plan (`plan.json`, digest = planHash), every artifact and every
 * output, sorted by name then digest.
 */
export function subjectsOf(predicate: PackRunPredicate): Subject[] {
  const subjects: Subject[] = [
    { name: "plan.json", digest: { sha256: hex(predicate.planHash) } },
    ...predicate.artifacts.map((artifact) => ({
      name: artifactSubjectName(artifact),
      digest: { sha256: hex(artifact.digest) },
    })),
    ...predicate.outputs.map((output) => ({
      name: `outputs/${output.name}`,
      digest: { sha256: hex(output.digest) },
    })),
  ];
  return subjects.sort((a, b) =>
    a.name === b.name ? a.digest.sha256.localeCompare(b.digest.sha256) : a.name < b.name ? -1 : 1,
  );
}

/** The in-toto Statement v1 for a predicate. */
export function buildStatement(predicate: PackRunPredicate): PackRunStatement {
  return {
    _type: statementType,
    subject: subjectsOf(predicate),
    predicateType: packRunPredicateType,
    predicate,
  };
}

/** The signed payload bytes of a statement: its RFC 8785 canonical JSON (UTF-8). */
export function serializeStatement(statement: PackRunStatement): Buffer {
  return Buffer.from(canonicalJson(statement), "utf8");
}

const statementSchema = z.object({
  _type: z.literal(statementType),
  subject: z
    .array(
      z.object({
        name: z.string(),
        digest: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
      }),
    )
    .min(1),
  predicateType: z.literal(packRunPredicateType),
  predicate: packRunPredicateSchema,
});

/** Result of {@link parseStatement}. */
export type ParsedStatement =
  | { ok: true; statement: PackRunStatement }
  | { ok: false; reason: string };

/** Parses and validates the payload of an attestation envelope as a pack-run statement. */
export function parseStatement(payload: Uint8Array): ParsedStatement {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    return { ok: false, reason: "payload is not JSON" };
  }
  const result = statementSchema.safeParse(value);
  if (!result.success) {
    const first = result.error.issues[0];
    return {
      ok: false,
      reason: `not a pack-run statement: ${first?.path.map(String).join(".") ?? ""}: ${first?.message ?? "invalid"}`,
    };
  }
  return { ok: true, statement: result.data as PackRunStatement };
}
