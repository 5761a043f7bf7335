import type { JsonValue } from "./evidence-json.ts";
import { digestJson } from "./evidence-json.ts";
import type { PackRunPredicate } from "./pack-run-predicate.ts";

/** Fixed member paths of an evidence bundle. */
export const bundlePaths = Object.freeze({
  manifest: "manifest.json",
  plan: "plan.json",
  inputs: "inputs.json",
  outputs: "outputs.json",
  transcript: "transcript.ndjson",
  artifactsIndex: "artifacts/index.json",
  approvals: "approvals.json",
  /**
   * The pack source exactly as published; its SHA-256 is the attested pack digest, which the
   * plan (and so the plan hash) binds. Absent from bundles of runs attested without it.
   */
  packSource: "pack.yaml",
  attestation: "attestation.dsse.json",
  /** SLSA Provenance v1 of the run's artifacts (runs with artifacts only). */
  provenance: "provenance.dsse.json",
  /** Signs the list of every other member (manifest.json included) with its digest. */
  bundleAttestation: "bundle.dsse.json",
});

/**
 * Version of the bundle layout, recorded in manifest.json and the bundle statement. 2: every
 * member is bound to a signature by bundle.dsse.json; 1 (before): manifest.json was unsigned.
 */
export const bundleVersion = 2;

/** What inputs.json shows instead of a secret's value. */
export const redactedValue = "[REDACTED]";

/** Path of the public key member: `keys/<keyid>.pem`. */
export function keyMemberPath(keyId: string): string {
  return `keys/${keyId}.pem`;
}

/** Path of an included artifact's content: `artifacts/sha256/<hex>`. */
export function artifactMemberPath(digest: string): string {
  return `artifacts/sha256/${digest.slice("sha256:".length)}`;
}

/** One entry of manifest.json. */
export interface ManifestMember {
  path: string;
  digest: string;
  sizeBytes: number;
}

/**
 * manifest.json: every other member with its digest and size, sorted by path; bundle.dsse.json,
 * which signs the manifest itself, is the one member it does not list.
 */
export function manifestDocument(
  predicate: Pick<PackRunPredicate, "runId" | "planHash">,
  members: readonly ManifestMember[],
) {
  return {
    bundleVersion,
    runId: predicate.runId,
    planHash: predicate.planHash,
    members: [...members]
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      .map(({ path, digest, sizeBytes }) => ({ path, digest, sizeBytes })),
  };
}

/**
 * inputs.json: each input's value beside the digest the attestation binds, and each secret by
 * name only.
 * @throws Error when a value is missing or does not match its attested digest
 */
export function inputsDocument(
  predicate: Pick<PackRunPredicate, "inputs" | "secrets">,
  values: Readonly<Record<string, JsonValue>>,
) {
  return {
    inputs: predicate.inputs.map(({ name, digest }) => {
      if (!Object.hasOwn(values, name)) throw new Error(`input ${name} has no value`);
      const value = values[name] as JsonValue;
      if (digestJson(value) !== digest) {
        throw new Error(`input ${name}: value does not match the attested digest ${digest}`);
      }
      return { name, digest, value };
    }),
    secrets: predicate.secrets.map(({ name }) => ({ name, value: redactedValue })),
  };
}

/**
 * outputs.json: each output with its digest, and the value of object outputs.
 * @throws Error when an object output's value is missing or does not match its digest
 */
export function outputsDocument(
  predicate: Pick<PackRunPredicate, "outputs">,
  values: Readonly<Record<string, JsonValue>>,
) {
  return {
    outputs: predicate.outputs.map((output) => {
      if (output.type !== "object") return output;
      if (!Object.hasOwn(values, output.name))
        throw new Error(`output ${output.name} has no value`);
      const value = values[output.name] as JsonValue;
      if (digestJson(value) !== output.digest) {
        throw new Error(`output ${output.name}: value does not match the attested digest`);
      }
      return { ...output, value };
    }),
  };
}

/** approvals.json: the approvals ledger and policy decisions, as attested. */
export function approvalsDocument(
  predicate: Pick<PackRunPredicate, "approvals" | "policyDecisions">,
) {
  return { approvals: predicate.approvals, policyDecisions: predicate.policyDecisions };
}

/** artifacts/index.json: every attested artifact, and where its content is when included. */
export function artifactsIndexDocument(
  predicate: Pick<PackRunPredicate, "artifacts">,
  includedDigests: ReadonlySet<string>,
) {
  return {
    artifacts: predicate.artifacts.map((artifact) => {
      const included = includedDigests.has(artifact.digest);
      return { ...artifact, included, path: included ? artifactMemberPath(artifact.digest) : null };
    }),
  };
}
