import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import {
  EventLevel,
  type EvidenceService,
  FinalizeRunResponseSchema,
  GetArtifactResponseSchema,
  GetAttestationResponseSchema,
  GetBundleResponseSchema,
  ListArtifactsResponseSchema,
  ListEventsResponseSchema,
  ListVerificationKeysResponseSchema,
  PutArtifactResponseSchema,
  SignApprovalRequestResponseSchema,
  SubscribeEventsResponseSchema,
  VerificationKeySchema,
} from "@packrun/proto/evidence/v1";
import { artifactMessage, findArtifact, listArtifacts } from "./artifact-records.ts";
import type { ArtifactStore } from "./artifact-store.ts";
import { buildBundle } from "./bundle-builder.ts";
import { eventMessage, levelNumber } from "./event-model.ts";
import type { EventNotifier } from "./event-notifier.ts";
import { readEvents } from "./event-store.ts";
import { attestationMessage, finalizeRun, getAttestation } from "./finalize-run.ts";
import { requireRunRef } from "./identifiers.ts";
import { ingestEvents } from "./ingest-events.ts";
import type { KeyRing } from "./key-ring.ts";
import { putArtifact } from "./put-artifact.ts";
import { RunFeeds } from "./run-feed.ts";
import { findRun } from "./runs.ts";
import { signApprovalRequest } from "./sign-approval-request.ts";
import { followEvents } from "./subscribe-events.ts";

/** Tunable limits of the evidence service. */
export interface EvidenceLimits {
  /** Most events per ingest transaction. */
  ingestBatchSize: number;
  /** Events read ahead per ingest stream. */
  ingestQueueSize: number;
  /** Events a live subscriber may lag behind... */
  subscriberMaxBacklog: number;
  /** ...for this long (ms) before it is cut off. */
  subscriberBacklogGraceMs: number;
  /** Events per subscription read (its memory bound). */
  subscriberPageSize: number;
  /** Subscriptions re-read the database at least this often. */
  subscriberPollMs: number;
  /** Largest artifact accepted. */
  maxArtifactBytes: number;
  /** Artifacts up to this size are copied into evidence bundles. */
  bundleArtifactMaxBytes: number;
}

/** Defaults of {@link EvidenceLimits}. */
export const defaultEvidenceLimits: EvidenceLimits = Object.freeze({
  ingestBatchSize: 500,
  ingestQueueSize: 2000,
  subscriberMaxBacklog: 10_000,
  subscriberBacklogGraceMs: 5000,
  subscriberPageSize: 500,
  subscriberPollMs: 5000,
  maxArtifactBytes: 4 * 1024 ** 3,
  bundleArtifactMaxBytes: 16 * 1024 ** 2,
});

/** Everything the RPC handlers use. */
export interface EvidenceServiceDeps {
  database: Database;
  store: ArtifactStore;
  notifier: EventNotifier;
  keys: KeyRing;
  logger: Logger;
  limits: EvidenceLimits;
}

const maxPageSize = 1000;
const chunkBytes = 64 * 1024;
// Most bytes (estimated) of events in one batched SubscribeEvents message (gRPC's usual
// receive limit is 4 MiB).
const subscribeBatchBytes = 1024 * 1024;
// The newest events each followed run keeps for its subscribers (estimated bytes): followers
// within a few seconds of a flood's head share them; one further behind reads the store.
const feedWindowBytes = 8 * 1024 * 1024;

/** Splits a byte stream into messages of at most 64 KiB. */
async function* rechunk(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    for (let offset = 0; offset < chunk.length; offset += chunkBytes) {
      yield chunk.subarray(offset, offset + chunkBytes);
    }
  }
}

/** The EvidenceService implementation. */
export function createEvidenceService(
  deps: EvidenceServiceDeps,
): ServiceImpl<typeof EvidenceService> {
  const { database, logger, limits } = deps;
  const feeds = new RunFeeds({
    database,
    notifier: deps.notifier,
    logger,
    limits: {
      pageSize: limits.subscriberPageSize,
      windowBytes: feedWindowBytes,
      pollIntervalMs: limits.subscriberPollMs,
    },
  });
  return {
    ingestEvents(requests) {
      return ingestEvents(
        {
          database,
          logger,
          limits: { maxBatch: limits.ingestBatchSize, maxQueued: limits.ingestQueueSize },
        },
        requests,
      );
    },

    async listEvents(request) {
      const { tenant, runId } = requireRunRef(request);
      await findRun(database, tenant, runId);
      if (request.pageSize > maxPageSize) {
        throw new PackrunError("REQUEST_INVALID", `page_size is at most ${maxPageSize}`);
      }
      const pageSize = request.pageSize === 0 ? 100 : request.pageSize;
      const rows = await readEvents(database, {
        runId,
        afterSequence: Number(request.afterSequence),
        limit: pageSize + 1,
        stepId: request.stepId,
        minLevel: request.minLevel === EventLevel.UNSPECIFIED ? 1 : levelNumber(request.minLevel),
      });
      const page = rows.slice(0, pageSize);
      return create(ListEventsResponseSchema, {
        events: page.map((row) => eventMessage(row, tenant)),
        nextAfterSequence: rows.length > pageSize ? BigInt(page.at(-1)?.sequence ?? 0) : 0n,
      });
    },

    async *subscribeEvents(request, context) {
      const { tenant, runId } = requireRunRef(request);
      const events = followEvents(
        {
          database,
          feeds,
          logger,
          limits: {
            maxBacklog: limits.subscriberMaxBacklog,
            backlogGraceMs: limits.subscriberBacklogGraceMs,
            pageSize: limits.subscriberPageSize,
            batchBytes: subscribeBatchBytes,
          },
        },
        { tenant, runId, afterSequence: Number(request.afterSequence), stepId: request.stepId },
        context.signal,
      );
      for await (const batch of events) {
        if (request.batch) yield create(SubscribeEventsResponseSchema, { events: batch });
        else for (const event of batch) yield create(SubscribeEventsResponseSchema, { event });
      }
    },

    async putArtifact(requests) {
      const row = await putArtifact(
        { database, store: deps.store, logger, maxArtifactBytes: limits.maxArtifactBytes },
        requests,
      );
      return create(PutArtifactResponseSchema, { artifact: artifactMessage(row) });
    },

    async listArtifacts(request) {
      const { tenant, runId } = requireRunRef(request);
      await findRun(database, tenant, runId);
      const rows = await listArtifacts(database, runId);
      return create(ListArtifactsResponseSchema, { artifacts: rows.map(artifactMessage) });
    },

    async *getArtifact(request) {
      const { tenant, runId } = requireRunRef(request);
      await findRun(database, tenant, runId);
      const row = await findArtifact(database, runId, request.digest);
      for await (const chunk of deps.store.open(row.digest, chunkBytes)) {
        yield create(GetArtifactResponseSchema, { chunk });
      }
    },

    async finalizeRun(request) {
      const { tenant, runId } = requireRunRef(request);
      const { row, created } = await finalizeRun(
        { database, keys: deps.keys, logger },
        {
          tenant,
          runId,
          runRecord: request.runRecord ?? {},
          planJson: request.planJson,
          packSource: request.packSource,
        },
      );
      return create(FinalizeRunResponseSchema, { attestation: attestationMessage(row), created });
    },

    async getAttestation(request) {
      const { tenant, runId } = requireRunRef(request);
      const row = await getAttestation(database, tenant, runId);
      return create(GetAttestationResponseSchema, { attestation: attestationMessage(row) });
    },

    async *getBundle(request) {
      const { tenant, runId } = requireRunRef(request);
      const bundle = buildBundle(
        {
          database,
          store: deps.store,
          maxArtifactBytes: limits.bundleArtifactMaxBytes,
          signingKey: deps.keys.signing,
        },
        tenant,
        runId,
      );
      for await (const chunk of rechunk(bundle)) yield create(GetBundleResponseSchema, { chunk });
    },

    async signApprovalRequest(request) {
      const { tenant, runId } = requireRunRef(request);
      const signed = await signApprovalRequest(
        { keys: deps.keys, logger },
        { tenant, runId, payloadJson: request.payloadJson },
      );
      return create(SignApprovalRequestResponseSchema, signed);
    },

    listVerificationKeys() {
      return create(ListVerificationKeysResponseSchema, {
        keys: deps.keys.verification.map((key) =>
          create(VerificationKeySchema, {
            keyId: key.keyId,
            algorithm: key.algorithm,
            publicKeyPem: key.publicKeyPem,
            active: key.keyId === deps.keys.signing.keyId,
          }),
        ),
      });
    },
  };
}
