/**
 * Offline attestation toolkit shared by the evidence service and `packrun verify`: DSSE PAE,
 * envelopes, Ed25519 / ECDSA P-256 keys and key ids, signing and verification, the in-toto
 * Statement with the pack-run predicate, the run record the executor sends, deterministic
 * evidence bundles and their verification.
 */
export {
  type ApprovalRequest,
  type ApprovalResponse,
  approvalRequestDigest,
  approvalRequestPayloadType,
  approvalRequestSchema,
  approvalRequestType,
  approvalResponsePayloadType,
  approvalResponseSchema,
  approvalResponseType,
  maxApprovalEnvelopeBytes,
  type ParsedExchange,
  parseApprovalRequest,
  parseApprovalResponse,
  serializeApprovalRequest,
  signApprovalResponse,
} from "./approval-exchange.ts";
export { decodeBase64 } from "./base64.ts";
export {
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
  redactedValue,
} from "./bundle-layout.ts";
export {
  type BundlePredicate,
  type BundleStatement,
  buildBundleStatement,
  bundlePredicateType,
  type ParsedBundleStatement,
  parseBundleStatement,
  serializeBundleStatement,
} from "./bundle-statement.ts";
export {
  type DsseEnvelope,
  type DsseSignature,
  type ParsedEnvelope,
  parseEnvelope,
  serializeEnvelope,
} from "./dsse-envelope.ts";
export { digestJson, evidenceJson, type JsonValue } from "./evidence-json.ts";
export {
  artifactSubjectName,
  buildStatement,
  inTotoPayloadType,
  type PackRunStatement,
  type ParsedStatement,
  packRunPredicateType,
  parseStatement,
  type Subject,
  serializeStatement,
  statementType,
  subjectsOf,
} from "./in-toto.ts";
export {
  keySetPem,
  loadVerificationKeys,
  type SigningJwk,
  verificationKeyJwk,
} from "./key-sets.ts";
export {
  generateSigningKeyPem,
  type KeyAlgorithm,
  keyIdOf,
  loadSigningKey,
  loadVerificationKey,
  publicKeyPem,
  type SigningKey,
  type VerificationKey,
} from "./keys.ts";
export {
  type AttestedArtifact,
  buildPredicate,
  type PackRunPredicate,
  packRunPredicateSchema,
  type TranscriptSummary,
} from "./pack-run-predicate.ts";
export { preAuthEncoding } from "./pae.ts";
export { type PlanClaims, planConsistencyProblems } from "./plan-consistency.ts";
export {
  parseRunRecord,
  type RunRecord,
  runRecordSchema,
  runStatusSchema,
  sha256DigestSchema,
  stepStatusSchema,
  utcTimestampSchema,
} from "./run-record.ts";
export { signBytes, signEnvelope } from "./sign-envelope.ts";
export {
  builderIdOf,
  buildProvenanceStatement,
  type ContainerImage,
  containerImagesOf,
  type ParsedProvenance,
  type ProvenanceStatement,
  packRunBuildType,
  parseProvenanceStatement,
  provenanceProblems,
  provenanceSubjectsOf,
  type ResourceDescriptor,
  resolvedDependenciesOf,
  type SlsaProvenance,
  serializeProvenanceStatement,
  slsaProvenancePredicateType,
} from "./slsa-provenance.ts";
export {
  type ArchiveMember,
  type BufferMember,
  collectBytes,
  packTarGz,
  type ReadArchiveLimits,
  type ReadArchiveResult,
  readTarGz,
  type StreamedMember,
} from "./tar-gz.ts";
export {
  type EventLevelName,
  eventLevels,
  type TranscriptEvent,
  terminalEventTypes,
  transcriptLine,
} from "./transcript.ts";
export {
  type BundleCheck,
  type BundleReport,
  type VerifyBundleOptions,
  verifyBundle,
} from "./verify-bundle.ts";
export { type EnvelopeVerification, verifyBytes, verifyEnvelope } from "./verify-envelope.ts";
export {
  type BundleArtifactFile,
  type BundleSource,
  writeBundle,
  writeBundleToBuffer,
} from "./write-bundle.ts";
