import { canonicalJson } from "@packrun/planning";
import { z } from "zod";
import type { ManifestMember } from "./bundle-layout.ts";
import { type Subject, statementType } from "./in-toto.ts";
import { sha256DigestSchema } from "./run-record.ts";

/** `predicateType` of the statement that signs an evidence bundle's member list. */
export const bundlePredicateType = "https://packrun.dev/attestation/evidence-bundle/v1";

/** What the bundle statement says besides its subjects: which run and plan the bundle is of. */
export interface BundlePredicate {
  /** Layout version of the bundle (2: the member list is signed). */
  bundleVersion: number;
  runId: string;
  planHash: string;
}

/**
 * The in-toto Statement v1 in `bundle.dsse.json`: one subject per bundle member (every member but
 * `bundle.dsse.json` itself, `manifest.json` included), so that the signature covers every byte.
 */
export interface BundleStatement {
  _type: typeof statementType;
  subject: Subject[];
  predicateType: typeof bundlePredicateType;
  predicate: BundlePredicate;
}

/** The bundle statement for `members` (paths with `sha256:<hex>` digests), subjects sorted by path. */
export function buildBundleStatement(
  predicate: BundlePredicate,
  members: readonly Pick<ManifestMember, "path" | "digest">[],
): BundleStatement {
  return {
    _type: statementType,
    subject: members
      .map(({ path, digest }) => ({
        name: path,
        digest: { sha256: digest.slice("sha256:".length) },
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    predicateType: bundlePredicateType,
    predicate: { ...predicate },
  };
}

/** The signed payload of a bundle statement: its RFC 8785 canonical JSON (UTF-8). */
export function serializeBundleStatement(statement: BundleStatement): Buffer {
  return Buffer.from(canonicalJson(statement), "utf8");
}

const bundleStatementSchema = z.object({
  _type: z.literal(statementType),
  subject: z
    .array(
      z.object({
        name: z.string().min(1),
        digest: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
      }),
    )
    .min(1),
  predicateType: z.literal(bundlePredicateType),
  predicate: z.object({
    bundleVersion: z.int().min(2),
    runId: z.string().min(1),
    planHash: sha256DigestSchema,
  }),
});

/** Result of {@link parseBundleStatement}. */
export type ParsedBundleStatement =
  | { ok: true; statement: BundleStatement }
  | { ok: false; reason: string };

/** Parses and validates the payload of `bundle.dsse.json`. */
export function parseBundleStatement(payload: Uint8Array): ParsedBundleStatement {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    return { ok: false, reason: "payload is not JSON" };
  }
  const result = bundleStatementSchema.safeParse(value);
  if (!result.success) {
    const first = result.error.issues[0];
    return {
      ok: false,
      reason: `not an evidence-bundle statement: ${first?.path.map(String).join(".") ?? ""}: ${first?.message ?? "invalid"}`,
    };
  }
  const names = result.data.subject.map((subject) => subject.name);
  if (new Set(names).size !== names.length) {
    return { ok: false, reason: "not an evidence-bundle statement: a subject is listed twice" };
  }
  return { ok: true, statement: result.data as BundleStatement };
}
