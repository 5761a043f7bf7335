import {
  type BundleArtifactFile,
  type JsonValue,
  parseEnvelope,
  parseRunRecord,
  parseStatement,
  type SigningKey,
  writeBundle,
} from "@packrun/attestation";
import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { ArtifactStore } from "./artifact-store.ts";
import { getAttestation } from "./finalize-run.ts";
import { transcriptChunks } from "./transcript-store.ts";

function provenanceEnvelope(json: string, runId: string) {
  const parsed = parseEnvelope(JSON.parse(json));
  if (!parsed.ok) throw new PackrunError("INTERNAL", `stored provenance of ${runId} is malformed`);
  return parsed.envelope;
}

/**
 * Streams the run's evidence bundle (.tar.gz), rebuilt from the stored attestation, plan, run
 * record, transcript and artifact store. Artifacts up to `maxArtifactBytes` are included; larger
 * ones are listed in the index only. The member list (bundle.dsse.json) is signed with
 * `signingKey`, the key ring's current key: with an Ed25519 key every call yields the same bytes;
 * ECDSA signatures are randomised, so then only bundle.dsse.json differs between calls.
 * @throws PackrunError ATTESTATION_NOT_FOUND before FinalizeRun
 */
export async function* buildBundle(
  deps: {
    database: Database;
    store: ArtifactStore;
    maxArtifactBytes: number;
    signingKey: SigningKey;
  },
  tenant: string,
  runId: string,
): AsyncGenerator<Buffer> {
  const row = await getAttestation(deps.database, tenant, runId);
  const parsed = parseEnvelope(JSON.parse(row.envelope_json));
  if (!parsed.ok) throw new PackrunError("INTERNAL", `stored attestation of ${runId} is malformed`);
  const statement = parseStatement(parsed.payload);
  if (!statement.ok)
    throw new PackrunError("INTERNAL", `stored statement of ${runId} is malformed`);
  const { predicate } = statement.statement;
  const record = parseRunRecord(row.run_record);
  const outputValues: Record<string, JsonValue> = {};
  for (const output of record.outputs) {
    if (output.value !== undefined) outputValues[output.name] = output.value as JsonValue;
  }
  const artifactFiles: BundleArtifactFile[] = predicate.artifacts
    .filter((artifact) => artifact.sizeBytes <= deps.maxArtifactBytes)
    .map((artifact) => ({
      digest: artifact.digest,
      sizeBytes: artifact.sizeBytes,
      open: () => deps.store.open(artifact.digest),
    }));
  yield* writeBundle({
    envelope: parsed.envelope,
    planJson: row.plan_json,
    inputValues: record.inputs as Record<string, JsonValue>,
    outputValues,
    publicKeyPem: row.public_key_pem,
    signingKey: deps.signingKey,
    transcript: { open: () => transcriptChunks(deps.database, runId, predicate.transcript.events) },
    artifactFiles,
    ...(row.provenance_envelope_json === null
      ? {}
      : { provenanceEnvelope: provenanceEnvelope(row.provenance_envelope_json, runId) }),
    ...(row.pack_source === null ? {} : { packSource: Buffer.from(row.pack_source, "utf8") }),
  });
}
