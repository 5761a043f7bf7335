import { createHash } from "node:crypto";
import { PackrunError } from "@packrun/errors";
import {
  approvalsDocument,
  artifactMemberPath,
  artifactsIndexDocument,
  bundlePaths,
  bundleVersion,
  inputsDocument,
  keyMemberPath,
  type ManifestMember,
  manifestDocument,
  outputsDocument,
} from "./bundle-layout.ts";
import { buildBundleStatement, serializeBundleStatement } from "./bundle-statement.ts";
import { type DsseEnvelope, parseEnvelope, serializeEnvelope } from "./dsse-envelope.ts";
import { evidenceJson, type JsonValue } from "./evidence-json.ts";
import { inTotoPayloadType, parseStatement } from "./in-toto.ts";
import { loadVerificationKey, type SigningKey } from "./keys.ts";
import { signEnvelope } from "./sign-envelope.ts";
import { type ArchiveMember, collectBytes, packTarGz, type StreamedMember } from "./tar-gz.ts";

/** Content of an artifact to include in a bundle; size and digest are checked while copying. */
export interface BundleArtifactFile {
  digest: string;
  sizeBytes: number;
  open(): AsyncIterable<Uint8Array>;
}

/** Everything a bundle is made of. The attestation's predicate decides what must be present. */
export interface BundleSource {
  /** The signed attestation. */
  envelope: DsseEnvelope;
  /** The canonical plan JSON; its SHA-256 must be the attested planHash. */
  planJson: string;
  /** Input values by name (non-secret). */
  inputValues: Readonly<Record<string, JsonValue>>;
  /** Values of object outputs by name. */
  outputValues: Readonly<Record<string, JsonValue>>;
  /** PEM of the public key that verifies the envelope. */
  publicKeyPem: string;
  /**
   * Signs bundle.dsse.json, the statement over every member's digest: the evidence service's
   * current signing key (after a rotation, not necessarily the key of `envelope`).
   */
  signingKey: SigningKey;
  /** transcript.ndjson; its size and digest must be those attested. */
  transcript: Uint8Array | { open(): AsyncIterable<Uint8Array> };
  /** Artifact contents to include (typically those up to a size limit). */
  artifactFiles: readonly BundleArtifactFile[];
  /** The signed SLSA provenance of the run's artifacts, when the run has one. */
  provenanceEnvelope?: DsseEnvelope;
  /**
   * The pack source (pack.yaml) as published; its SHA-256 must be the attested pack digest.
   * Absent: the bundle has no pack.yaml.
   */
  packSource?: Uint8Array | undefined;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/**
 * Streams a run's evidence bundle (.tar.gz), signing its member list (bundle.dsse.json) with
 * `source.signingKey`. Deterministic for Ed25519 keys: the same source gives the same bytes
 * (ECDSA signatures are randomised, so only bundle.dsse.json then differs). Layout in
 * docs/evidence.md.
 * @throws PackrunError INTERNAL when the source contradicts its own attestation
 */
export async function* writeBundle(source: BundleSource): AsyncIterable<Buffer> {
  const parsed = parseEnvelope(source.envelope);
  if (!parsed.ok) throw new PackrunError("INTERNAL", `bundle: ${parsed.reason}`);
  const statement = parseStatement(parsed.payload);
  if (!statement.ok) throw new PackrunError("INTERNAL", `bundle: ${statement.reason}`);
  const { predicate } = statement.statement;
  const planBytes = Buffer.from(source.planJson, "utf8");
  if (sha256(planBytes) !== predicate.planHash) {
    throw new PackrunError(
      "PLAN_HASH_MISMATCH",
      "bundle: plan JSON does not hash to the attested planHash",
    );
  }
  if (source.packSource !== undefined && sha256(source.packSource) !== predicate.pack.digest) {
    throw new PackrunError(
      "INTERNAL",
      `bundle: the pack source hashes to ${sha256(source.packSource)}, not the attested pack digest ${predicate.pack.digest}`,
    );
  }
  const key = loadVerificationKey(source.publicKeyPem, "bundle public key");
  const attested = new Map(predicate.artifacts.map((artifact) => [artifact.digest, artifact]));
  const included = new Set<string>();
  const streamed: StreamedMember[] = [];
  for (const file of source.artifactFiles) {
    if (!attested.has(file.digest)) {
      throw new PackrunError("INTERNAL", `bundle: artifact ${file.digest} is not attested`);
    }
    if (included.has(file.digest)) continue;
    included.add(file.digest);
    streamed.push({
      path: artifactMemberPath(file.digest),
      sizeBytes: file.sizeBytes,
      digest: file.digest,
      open: () => file.open(),
    });
  }
  const { transcript } = source;
  if (
    transcript instanceof Uint8Array &&
    (sha256(transcript) !== predicate.transcript.digest ||
      transcript.length !== predicate.transcript.sizeBytes)
  ) {
    throw new PackrunError("INTERNAL", "bundle: transcript differs from the attested one");
  }
  let documents: Record<string, string>;
  try {
    documents = {
      [bundlePaths.inputs]: evidenceJson(inputsDocument(predicate, source.inputValues)),
      [bundlePaths.outputs]: evidenceJson(outputsDocument(predicate, source.outputValues)),
      [bundlePaths.approvals]: evidenceJson(approvalsDocument(predicate)),
      [bundlePaths.artifactsIndex]: evidenceJson(artifactsIndexDocument(predicate, included)),
    };
  } catch (error) {
    throw new PackrunError("INTERNAL", `bundle: ${(error as Error).message}`, { cause: error });
  }
  const buffers: { path: string; content: Uint8Array }[] = [
    ...Object.entries(documents).map(([path, text]) => ({ path, content: Buffer.from(text) })),
    { path: bundlePaths.plan, content: planBytes },
    { path: bundlePaths.attestation, content: Buffer.from(serializeEnvelope(parsed.envelope)) },
    { path: keyMemberPath(key.keyId), content: Buffer.from(key.publicKeyPem) },
    ...(source.packSource === undefined
      ? []
      : [{ path: bundlePaths.packSource, content: source.packSource }]),
  ];
  if (source.provenanceEnvelope !== undefined) {
    buffers.push({
      path: bundlePaths.provenance,
      content: Buffer.from(serializeEnvelope(source.provenanceEnvelope)),
    });
  }
  if (source.signingKey.keyId !== key.keyId) {
    // After a rotation the run's attestation and the bundle are signed by different keys.
    buffers.push({
      path: keyMemberPath(source.signingKey.keyId),
      content: Buffer.from(source.signingKey.publicKeyPem),
    });
  }
  const transcriptMember: ArchiveMember =
    transcript instanceof Uint8Array
      ? { path: bundlePaths.transcript, content: transcript }
      : {
          path: bundlePaths.transcript,
          sizeBytes: predicate.transcript.sizeBytes,
          digest: predicate.transcript.digest,
          open: () => transcript.open(),
        };
  const manifestMembers: ManifestMember[] = [
    ...buffers.map(({ path, content }) => ({
      path,
      digest: sha256(content),
      sizeBytes: content.length,
    })),
    ...[transcriptMember, ...streamed].map((member) =>
      "content" in member
        ? { path: member.path, digest: sha256(member.content), sizeBytes: member.content.length }
        : { path: member.path, digest: member.digest, sizeBytes: member.sizeBytes },
    ),
  ];
  const manifest = Buffer.from(evidenceJson(manifestDocument(predicate, manifestMembers)));
  // Streamed members are listed with their expected digests; packTarGz fails the stream if the
  // content read then differs, so the signature never covers bytes that were not written.
  const bundleStatement = buildBundleStatement(
    { bundleVersion, runId: predicate.runId, planHash: predicate.planHash },
    [...manifestMembers, { path: bundlePaths.manifest, digest: sha256(manifest) }],
  );
  const bundleEnvelope = signEnvelope(
    inTotoPayloadType,
    serializeBundleStatement(bundleStatement),
    source.signingKey,
  );
  yield* packTarGz([
    ...buffers,
    transcriptMember,
    ...streamed,
    { path: bundlePaths.manifest, content: manifest },
    {
      path: bundlePaths.bundleAttestation,
      content: Buffer.from(serializeEnvelope(bundleEnvelope)),
    },
  ]);
}

/** {@link writeBundle} into one Buffer. */
export function writeBundleToBuffer(source: BundleSource): Promise<Buffer> {
  return collectBytes(writeBundle(source));
}
