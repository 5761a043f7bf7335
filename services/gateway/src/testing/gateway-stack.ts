import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ApprovalBinding, allScopes, mintToken, type Scope } from "@packrun/auth";
import { type Embedded, type EmbeddedOptions, startEmbedded } from "@packrun/embedded";
import { createLogger, type Logger } from "@packrun/logging";
import { createTestDatabase, createTestRedis } from "@packrun/testing";
import type { JWK } from "jose";

/** What a test token says; every field has a default. */
export interface TestTokenOptions {
  readonly tenant?: string;
  readonly subject?: string;
  readonly scopes?: readonly string[];
  readonly groups?: readonly string[];
  readonly approval?: ApprovalBinding;
  readonly expiresInSeconds?: number;
}

/** Planner, executor (with its worker), evidence and the gateway on the test Postgres and Redis. */
export interface GatewayStack {
  /** Base URL of the gateway. */
  readonly url: string;
  readonly executorUrl: string;
  readonly evidenceUrl: string;
  readonly plannerUrl: string;
  /** `/metrics` of the gRPC services given a metrics port. */
  readonly metricsUrls: Embedded["metricsUrls"];
  /** Private JWK file of the key the gateway trusts. */
  readonly signingKeyFile: string;
  /** The public JWK Set the gateway verifies tokens with. */
  readonly jwksFile: string;
  /** The test database every service keeps its schema in (for scanning what was stored). */
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** Every Redis key of the stack starts with this. */
  readonly redisKeyPrefix: string;
  /** The services' data directory (keys, artifacts, work directories). */
  readonly home: string;
  readonly issuer: string;
  readonly audience: string;
  /** A token signed by the trusted key (default tenant `acme`, subject `alice`, every scope). */
  mintToken(options?: TestTokenOptions): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts the four services in this process, talking gRPC over loopback as in production, on a
 * fresh database of the test PostgreSQL and a private namespace of the test Redis.
 */
export async function startGatewayStack(
  options: {
    logger?: Logger;
    metricsPorts?: EmbeddedOptions["metricsPorts"];
    /** "memory": the embedded default's in-process queue and file vault instead of Redis. */
    queue?: "redis" | "memory";
    /** Executor limits and timekeeper of the stack (see EmbeddedOptions). */
    executor?: Pick<EmbeddedOptions, "limits" | "timekeeper">;
    objectStore?: EmbeddedOptions["objectStore"];
  } = {},
): Promise<GatewayStack> {
  const home = await mkdtemp(join(tmpdir(), "packrun-gateway-"));
  const database = await createTestDatabase("gateway");
  const redis = await createTestRedis("gateway");
  const logger =
    options.logger ??
    createLogger({ service: "test", level: process.env.PACKRUN_LOG_LEVEL ?? "silent" });
  const stack = await startEmbedded({
    home,
    logger,
    databaseUrl: database.url,
    ...(options.queue === "memory"
      ? {}
      : {
          redisUrl: redis.url,
          redisNamespace: {
            queueName: `steps-${redis.keyPrefix.replace(/[^A-Za-z0-9]/g, "")}`,
            keyPrefix: redis.keyPrefix,
          },
        }),
    ...(options.metricsPorts === undefined ? {} : { metricsPorts: options.metricsPorts }),
    ...options.executor,
    ...(options.objectStore === undefined ? {} : { objectStore: options.objectStore }),
  });
  const devAuth = stack.devAuth;
  if (devAuth === undefined) throw new Error("the gateway stack expects dev-mode auth");
  const key = JSON.parse(await readFile(devAuth.signingKeyFile, "utf8")) as JWK;
  return {
    url: stack.gatewayUrl,
    executorUrl: stack.executorUrl,
    evidenceUrl: stack.evidenceUrl,
    plannerUrl: stack.plannerUrl,
    metricsUrls: stack.metricsUrls,
    signingKeyFile: devAuth.signingKeyFile,
    jwksFile: devAuth.jwksFile,
    databaseUrl: database.url,
    redisUrl: redis.url,
    redisKeyPrefix: redis.keyPrefix,
    home,
    issuer: devAuth.issuer,
    audience: devAuth.audience,
    mintToken(options = {}) {
      return mintToken({
        key,
        issuer: devAuth.issuer,
        audience: devAuth.audience,
        tenant: options.tenant ?? "acme",
        subject: options.subject ?? "alice",
        scopes: (options.scopes ?? allScopes) as readonly Scope[],
        ...(options.groups === undefined ? {} : { groups: options.groups }),
        ...(options.approval === undefined ? {} : { approval: options.approval }),
        ...(options.expiresInSeconds === undefined
          ? {}
          : { expiresInSeconds: options.expiresInSeconds }),
      });
    },
    async close() {
      await stack.close();
      await redis.cleanup();
      await database.drop();
      await rm(home, { recursive: true, force: true });
    },
  };
}
