import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createTokenVerifier, loadOrCreateLocalSigningKey, mintToken } from "@packrun/auth";
import { consoleAssetsDir } from "@packrun/console";
import { loadKeyRing, type S3ArtifactStoreOptions, startEvidenceServer } from "@packrun/evidence";
import {
  createFileSecretVault,
  createMemoryWorkQueue,
  createRedisSecretVault,
  defaultStepLimits,
  type ExecutorLimits,
  executeStep,
  startExecutor,
} from "@packrun/executor";
import { type AuthConfig, type DevTokenIssuer, type Gateway, startGateway } from "@packrun/gateway";
import type { Logger } from "@packrun/logging";
import { startPlannerServer } from "@packrun/planner";
import { configureSharedPlanningPool, sharedPlanningPool } from "@packrun/planning";
import { type DevCertificates, ensureDevCertificates } from "@packrun/rpc-server";
import { flushTelemetry, initTelemetry } from "@packrun/telemetry";
import type { JWK } from "jose";
import { openServiceDatabases } from "./service-databases.ts";

/** Options for {@link startEmbedded}. */
export interface EmbeddedOptions {
  /** Where data persists across restarts (databases, keys, artifacts, work directories). */
  home: string;
  logger: Logger;
  /** Ports of the services; 0 (the default) lets the OS pick. */
  ports?: { planner?: number; executor?: number; evidence?: number; gateway?: number };
  /** Plain HTTP ports serving each gRPC service's Prometheus `/metrics` (0 = any); default none. */
  metricsPorts?: { planner?: number; executor?: number; evidence?: number };
  /** Real PostgreSQL instead of the embedded one (each service in its own schema, as there). */
  databaseUrl?: string;
  /** Real Redis instead of the in-process queue and secret vault. */
  redisUrl?: string;
  /**
   * base64 of 32 bytes; encrypts the secrets of waiting runs, in Redis with redisUrl, else in
   * `home/secrets` (default: a key kept in `home/keys`).
   */
  secretsKey?: string;
  /** With redisUrl: namespacing of the queue and vault keys, so several stacks share a Redis. */
  redisNamespace?: { queueName: string; keyPrefix: string };
  /**
   * How the gateway verifies tokens. Default: dev mode, a local ES256 key pair kept in
   * `home/keys` (see {@link Embedded.devAuth}).
   */
  auth?: AuthConfig;
  /**
   * The executor's limits, as a separate executor reads them from PACKRUN_EXECUTOR_* (see
   * `loadExecutorLimits`): worker concurrency, per-tenant running steps, per-user runs in
   * flight, step memory and processes. Default: a separate executor's defaults.
   */
  limits?: Partial<ExecutorLimits>;
  /** The executor's timekeeper (schedules, waiting runs, deadlines); tests shorten it. */
  timekeeper?: { intervalMs?: number; missedGraceMs?: number };
  /** Artifact content in this S3-compatible bucket instead of `home/artifacts`. */
  objectStore?: S3ArtifactStoreOptions;
  /**
   * JSON file of the approver public keys per tenant that offline approval responses are checked
   * against (docs/operations.md). Default: `home/approver-keys.json` when it exists, read again at
   * every import.
   */
  approverKeysFile?: string;
}

/** The local token issuer of dev mode: what `packrun token` needs to mint tokens. */
export interface DevAuth {
  /** Private JWK of the signing key (mode 0600). */
  readonly signingKeyFile: string;
  /** The public JWK Set the gateway trusts. */
  readonly jwksFile: string;
  readonly issuer: string;
  readonly audience: string;
}

/** Issuer and audience of dev-mode tokens. */
export const devIssuer = "packrun-local";
export const devAudience = "packrun";
/** Who dev mode's CLI config and web console act as. */
export const devOperator = { tenant: "default", subject: "operator" } as const;

/** The web console's dev sign-in: tokens for the local operator, signed with the dev key. */
async function devTokenIssuer(devAuth: DevAuth): Promise<DevTokenIssuer> {
  const key = JSON.parse(await readFile(devAuth.signingKeyFile, "utf8")) as JWK;
  return {
    operator: devOperator,
    mint: (request) =>
      mintToken({ key, issuer: devAuth.issuer, audience: devAuth.audience, ...request }),
  };
}

/** The running embedded services. */
export interface Embedded {
  readonly plannerUrl: string;
  readonly executorUrl: string;
  readonly evidenceUrl: string;
  /** The public REST + SSE API. */
  readonly gatewayUrl: string;
  /** The web console (served by the gateway at `/`). */
  readonly consoleUrl: string;
  /** The running gateway (its Fastify app and server). */
  readonly gateway: Gateway;
  /** `/metrics` URLs of the services given a metrics port. */
  readonly metricsUrls: { planner?: string; executor?: string; evidence?: string };
  /** Present in dev mode (no `auth` option given). */
  readonly devAuth: DevAuth | undefined;
  /**
   * The internal PKI (home/tls): the CA a client of the public gRPC API trusts (`caFile`) and
   * each service's certificate and key.
   */
  readonly tls: DevCertificates;
  /** Graceful stop of every service, then the databases. */
  close(): Promise<void>;
}

/** The secrets key: given, or created once in `home` (mode 0600) and reused after. */
async function secretsKey(home: string, given: string | undefined): Promise<Buffer> {
  if (given !== undefined) return Buffer.from(given, "base64");
  const path = join(home, "keys", "secrets.key");
  try {
    return Buffer.from((await readFile(path, "utf8")).trim(), "base64");
  } catch {
    await mkdir(join(home, "keys"), { recursive: true });
    const key = randomBytes(32);
    await writeFile(path, key.toString("base64"), { mode: 0o600, flag: "wx" }).catch(() => {});
    return Buffer.from((await readFile(path, "utf8")).trim(), "base64");
  }
}

/** How the gateway checks tokens: as given, or dev mode's local issuer (created once in home). */
async function prepareAuth(
  home: string,
  given: AuthConfig | undefined,
): Promise<{ auth: AuthConfig; devAuth?: DevAuth; devTokens?: DevTokenIssuer }> {
  if (given !== undefined) return { auth: given };
  const devAuth: DevAuth = {
    signingKeyFile: join(home, "keys", "token-signing-key.jwk"),
    jwksFile: join(home, "keys", "token-jwks.json"),
    issuer: devIssuer,
    audience: devAudience,
  };
  await loadOrCreateLocalSigningKey(devAuth.signingKeyFile, devAuth.jwksFile);
  return {
    devAuth,
    devTokens: await devTokenIssuer(devAuth),
    auth: {
      jwksFile: devAuth.jwksFile,
      issuer: devIssuer,
      audience: devAudience,
      algorithms: ["ES256"],
      clockToleranceSeconds: 30,
      tenantClaim: "tenant",
      groupsClaim: "groups",
    },
  };
}

/** Milliseconds each start-up phase took, logged once everything serves (start-up profile). */
function phaseClock() {
  const started = performance.now();
  const phasesMs: Record<string, number> = {};
  return {
    phasesMs,
    /** Awaits `work`, noting when it finished (ms since the start). */
    async done<T>(phase: string, work: Promise<T>): Promise<T> {
      const result = await work;
      phasesMs[phase] = Math.round(performance.now() - started);
      return result;
    },
  };
}

/**
 * Starts planner, evidence and executor in this process, on one embedded Postgres (PGlite) with
 * a schema per service, talking gRPC over loopback exactly as in production; the executor uses the
 * in-process queue and a secret vault in `home/secrets`. Same code paths, different adapters.
 * What does not depend on each other starts at once: the database beside the keys and
 * certificates, the planner beside evidence.
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<Embedded> {
  const { home, logger } = options;
  // One process, one tracer provider: every span is `packrun-embedded`'s (a no-op if the
  // process set tracing up already). Traces are exported when OTEL_* asks, as in production.
  initTelemetry({ serviceName: "packrun-embedded", logger });
  await mkdir(home, { recursive: true });
  const clock = phaseClock();
  const metricsPort = (service: "planner" | "executor" | "evidence") => {
    const port = options.metricsPorts?.[service];
    return port === undefined ? {} : { metrics: { port } };
  };
  const { databaseUrl, redisUrl } = options;
  if (databaseUrl === undefined) {
    // One process plans for every service: one planning thread, not a pool per service at the
    // machine's size (each thread loads the planning modules: memory and start-up CPU).
    configureSharedPlanningPool({ threads: 1 });
  }
  const databasesOpened = clock.done("databases", openServiceDatabases(home, databaseUrl, logger));
  // Keys and certificates (created on the first start) while the database starts.
  const [{ auth, devAuth, devTokens }, certificates, keys] = await Promise.all([
    clock.done("auth", prepareAuth(home, options.auth)),
    // The services' internal PKI: a development CA kept in home/tls and a certificate per
    // service, so the services authenticate each other as in production (mutual TLS).
    clock.done("certificates", ensureDevCertificates(join(home, "tls"))),
    clock.done(
      "signing keys",
      loadKeyRing(
        { devKeyPath: join(home, "keys", "dev-signing-key.pem") },
        logger.child({ service: "evidence" }),
      ),
    ),
    // A rejected database start must not be an unhandled rejection while these finish.
    databasesOpened.catch(() => {}),
  ]);
  const databases = await databasesOpened;
  const tokens = await createTokenVerifier(auth);
  const security = (service: "planner" | "executor" | "evidence") => ({
    security: { tls: certificates.services[service], tokens },
  });
  const [planner, evidence] = await Promise.all([
    clock.done(
      "planner",
      startPlannerServer({
        database: databases.planner,
        logger: logger.child({ service: "planner" }),
        port: options.ports?.planner ?? 0,
        ...(databaseUrl === undefined ? { planning: sharedPlanningPool() } : {}),
        ...metricsPort("planner"),
        ...security("planner"),
      }),
    ),
    clock.done(
      "evidence",
      startEvidenceServer({
        database: databases.evidence,
        ...databases.live.evidence,
        logger: logger.child({ service: "evidence" }),
        artifactRoot: join(home, "artifacts"),
        ...(options.objectStore === undefined ? {} : { objectStore: options.objectStore }),
        signingKey: keys.signing,
        verificationKeys: keys.verification,
        port: options.ports?.evidence ?? 0,
        ...metricsPort("evidence"),
        ...security("evidence"),
      }),
    ),
  ]);
  const namespace = options.redisNamespace;
  // ioredis and BullMQ are loaded only with Redis: the default never needs them (memory).
  const redis =
    redisUrl === undefined
      ? undefined
      : new (await import("ioredis")).Redis(
          redisUrl,
          namespace === undefined ? {} : { keyPrefix: namespace.keyPrefix },
        );
  redis?.on("error", () => {});
  const queue =
    redisUrl === undefined
      ? createMemoryWorkQueue()
      : (await import("@packrun/executor/bullmq-work-queue")).createBullmqWorkQueue({
          redisUrl,
          ...(namespace === undefined
            ? {}
            : { name: namespace.queueName, prefix: namespace.keyPrefix.replace(/:$/, "") }),
        });
  const executor = await clock.done(
    "executor",
    startExecutor({
      database: databases.executor,
      queue,
      // Secrets outlive a restart as the runs do: sealed with the local key, in home or Redis.
      vault:
        redis === undefined
          ? createFileSecretVault({
              dir: join(home, "secrets"),
              key: await secretsKey(home, options.secretsKey),
            })
          : createRedisSecretVault({ redis, key: await secretsKey(home, options.secretsKey) }),
      logger: logger.child({ service: "executor" }),
      plannerUrl: planner.url,
      evidenceUrl: evidence.url,
      executorId: "executor@embedded",
      runStep: executeStep,
      workRoot: join(home, "work"),
      port: options.ports?.executor ?? 0,
      ...metricsPort("executor"),
      ...security("executor"),
      worker: {
        concurrency: options.limits?.concurrency ?? 4,
        tenantConcurrency: options.limits?.tenantConcurrency ?? 0,
        limits: {
          ...defaultStepLimits,
          ...(options.limits?.stepMemoryBytes === undefined
            ? {}
            : { memoryBytes: options.limits.stepMemoryBytes }),
          ...(options.limits?.stepPids === undefined ? {} : { pids: options.limits.stepPids }),
          ...(options.limits?.stepDiskBytes === undefined
            ? {}
            : { diskBytes: options.limits.stepDiskBytes }),
        },
      },
      admission: { perSubjectRuns: options.limits?.userConcurrency ?? 0 },
      ...(options.timekeeper === undefined ? {} : { timekeeper: options.timekeeper }),
      changes: databases.live.executor,
      approverKeys:
        options.approverKeysFile === undefined
          ? { file: join(home, "approver-keys.json"), optional: true }
          : { file: options.approverKeysFile },
    }),
  );
  const gateway = await clock.done(
    "gateway",
    startGateway({
      logger: logger.child({ service: "gateway" }),
      auth,
      plannerUrl: planner.url,
      executorUrl: executor.url,
      evidenceUrl: evidence.url,
      port: options.ports?.gateway ?? 0,
      tls: certificates.services.gateway,
      // The console at /, and in dev mode its sign-in as the local operator (loopback only).
      console: {
        assetsDir: consoleAssetsDir,
        ...(devTokens === undefined ? {} : { devTokens }),
      },
    }),
  );
  const memory = process.memoryUsage();
  const mib = (bytes: number) => Math.round(bytes / 1048576);
  logger.info(
    {
      phasesMs: clock.phasesMs,
      memoryMiB: {
        rss: mib(memory.rss),
        heapUsed: mib(memory.heapUsed),
        external: mib(memory.external),
        arrayBuffers: mib(memory.arrayBuffers),
      },
    },
    "embedded services started",
  );
  return {
    plannerUrl: planner.url,
    executorUrl: executor.url,
    evidenceUrl: evidence.url,
    gatewayUrl: gateway.url,
    consoleUrl: `${gateway.url}/`,
    gateway,
    metricsUrls: Object.fromEntries(
      Object.entries({
        planner: planner.metricsUrl,
        executor: executor.metricsUrl,
        evidence: evidence.metricsUrl,
      }).filter(([, url]) => url !== undefined),
    ),
    devAuth,
    tls: { caFile: certificates.caFile, dir: certificates.dir, services: certificates.services },
    async close() {
      await gateway.close();
      await executor.close(10_000);
      // The executor does not own the queue it was given.
      await queue.close();
      await Promise.all([evidence.close(), planner.close()]);
      await databases.close();
      redis?.disconnect();
      await flushTelemetry();
    },
  };
}
