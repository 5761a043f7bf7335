/**
 * The evidence service: the ordered event log of every run, live subscriptions, the artifact
 * store, DSSE attestations and evidence bundles, over Connect/gRPC.
 */
export {
  type ArtifactFileSystem,
  type ArtifactStore,
  createArtifactStore,
  nodeArtifactFileSystem,
  type PutOptions,
  type StoredContent,
  type WritableFile,
} from "./artifact-store.ts";
export {
  channelEventNotifier,
  createPostgresNotifier,
  type EventNotifier,
} from "./event-notifier.ts";
export { eventsChannel } from "./event-store.ts";
export {
  defaultEvidencePort,
  type EvidenceConfig,
  loadEvidenceConfig,
  objectStoreOptions,
} from "./evidence-config.ts";
export {
  type EvidenceServer,
  type EvidenceServerOptions,
  evidenceMigrationsDir,
  evidenceSchema,
  startEvidenceServer,
} from "./evidence-server.ts";
export {
  createEvidenceService,
  defaultEvidenceLimits,
  type EvidenceLimits,
  type EvidenceServiceDeps,
} from "./evidence-service.ts";
export {
  createKeyRing,
  ensureDevKey,
  type KeyFiles,
  type KeyRing,
  loadKeyRing,
} from "./key-ring.ts";
// Only the type: the store itself (and the AWS SDK) is loaded when an object store is configured.
export type { S3ArtifactStoreOptions } from "./s3-artifact-store.ts";
export { resumeAfterTrailer } from "./subscribe-events.ts";
