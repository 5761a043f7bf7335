import { fileURLToPath } from "node:url";
import type { SigningKey, VerificationKey } from "@packrun/attestation";
import { type Database, migrate } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { type ServiceSecurity, startRpcServer } from "@packrun/rpc-server";
import { type ArtifactFileSystem, createArtifactStore } from "./artifact-store.ts";
import { createPostgresNotifier, type EventNotifier } from "./event-notifier.ts";
import { evidenceAccessPolicy } from "./evidence-access.ts";
import {
  createEvidenceService,
  defaultEvidenceLimits,
  type EvidenceLimits,
} from "./evidence-service.ts";
import { createKeyRing } from "./key-ring.ts";
import type { S3ArtifactStoreOptions } from "./s3-artifact-store.ts";

/** The Postgres schema the evidence service owns; no other service reads it. */
export const evidenceSchema = "evidence";

/** Directory of the evidence service's numbered SQL migrations. */
export const evidenceMigrationsDir = fileURLToPath(new URL("../migrations", import.meta.url));

/** Options for {@link startEvidenceServer}. */
export interface EvidenceServerOptions {
  /** The evidence database; the caller keeps ownership and closes it after the server. */
  database: Database;
  /**
   * URL of the same database, for the dedicated LISTEN connection that carries live event
   * notifications between replicas. Required unless `notifier` is given.
   */
  databaseUrl?: string;
  /** Replaces the LISTEN/NOTIFY notifier (e.g. an embedded database's). */
  notifier?: EventNotifier;
  logger: Logger;
  /** Root directory of the content-addressed artifact store (unused with `objectStore`). */
  artifactRoot: string;
  /** Keep artifact content in this S3-compatible bucket instead of under `artifactRoot`. */
  objectStore?: S3ArtifactStoreOptions;
  /** Signs new attestations. */
  signingKey: SigningKey;
  /** More keys that verify (retired signing keys), listed by ListVerificationKeys. */
  verificationKeys?: readonly VerificationKey[];
  limits?: Partial<EvidenceLimits>;
  /** Test seam: the filesystem the artifact store writes through. */
  artifactFileSystem?: ArtifactFileSystem;
  /** 0 (default) lets the OS pick. */
  port?: number;
  /** Loopback by default. */
  host?: string;
  /** Serve Prometheus metrics on this plain HTTP port at `/metrics` (default: none). */
  metrics?: { port: number; host?: string };
  /**
   * TLS with this service's certificate, callers authenticated by client certificate or bearer
   * token and authorised per RPC. Without it: cleartext and unchecked, for in-process tests.
   */
  security?: ServiceSecurity;
}

/** A running evidence service. */
export interface EvidenceServer {
  /** e.g. http://127.0.0.1:40123 */
  readonly url: string;
  readonly port: number;
  /** Where `/metrics` is served; undefined without the metrics option. */
  readonly metricsUrl: string | undefined;
  /** Stops accepting calls, closes open streams and the LISTEN connection; leaves the database open. */
  close(): Promise<void>;
}

const hour = 3600_000;

/**
 * Brings the evidence schema up to date, then serves EvidenceService (plus grpc.health.v1) over
 * Connect, gRPC and gRPC-Web.
 */
export async function startEvidenceServer(options: EvidenceServerOptions): Promise<EvidenceServer> {
  const { logger } = options;
  const applied = await migrate(options.database, evidenceSchema, evidenceMigrationsDir);
  if (applied.length > 0)
    logger.info({ schema: evidenceSchema, migrations: applied }, "migrations applied");
  const store =
    options.objectStore === undefined
      ? createArtifactStore({
          root: options.artifactRoot,
          ...(options.artifactFileSystem === undefined
            ? {}
            : { fileSystem: options.artifactFileSystem }),
        })
      : // Loaded only when used: the AWS SDK is a large module the default never needs.
        (await import("./s3-artifact-store.ts")).createS3ArtifactStore(options.objectStore);
  try {
    const swept = await store.sweepTemporaryFiles(hour);
    if (swept > 0)
      logger.info({ removed: swept, store: store.root }, "removed stale temporary artifact files");
  } catch (error) {
    // An object store that is down now may be back by the first upload; uploads report it then.
    logger.warn({ err: error, store: store.root }, "artifact store not reachable at startup");
  }
  let notifier = options.notifier;
  if (notifier === undefined) {
    if (options.databaseUrl === undefined) {
      throw new PackrunError(
        "CONFIG_INVALID",
        "evidence server needs databaseUrl (for LISTEN/NOTIFY) or a notifier",
      );
    }
    notifier = await createPostgresNotifier({ url: options.databaseUrl, logger });
  }
  const ownNotifier = options.notifier === undefined ? notifier : undefined;
  const service = createEvidenceService({
    database: options.database,
    store,
    notifier,
    keys: createKeyRing(options.signingKey, options.verificationKeys),
    logger,
    limits: { ...defaultEvidenceLimits, ...options.limits },
  });
  let server: Awaited<ReturnType<typeof startRpcServer>>;
  try {
    server = await startRpcServer({
      routes: (router) => router.service(EvidenceService, service),
      serviceNames: [EvidenceService.typeName],
      logger,
      ...(options.security === undefined
        ? {}
        : { security: { ...options.security, policy: evidenceAccessPolicy } }),
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.metrics === undefined
        ? {}
        : { metrics: { service: "evidence", ...options.metrics } }),
    });
  } catch (error) {
    await ownNotifier?.close();
    throw error;
  }
  return {
    url: server.url,
    port: server.port,
    metricsUrl: server.metricsUrl,
    async close() {
      await server.close();
      await ownNotifier?.close();
    },
  };
}
