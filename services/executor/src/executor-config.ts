import { tmpdir } from "node:os";
import { join } from "node:path";
import { authConfigSchema, authEnvMap } from "@packrun/auth";
import {
  loadConfig,
  logLevelSchema,
  portSchema,
  postgresUrlSchema,
  redisUrlSchema,
  rpcSecurityEnvMap,
  rpcSecuritySchema,
} from "@packrun/config";
import { z } from "zod";

/** Port the executor listens on when PACKRUN_EXECUTOR_PORT is not set. */
export const defaultExecutorPort = 7002;

/** What an executor process does: everything, only the RPCs, or only run steps. */
export type ExecutorRole = "all" | "api" | "worker";

const whole = (name: string, min: number) =>
  z.coerce.number().int(`${name} must be a whole number`).min(min);

/**
 * The secrets key: base64 of exactly 32 random bytes. Messages never repeat the value: a config
 * error is printed, and this is a secret.
 */
const secretsKeySchema = z
  .string({
    error:
      "is required: set PACKRUN_SECRETS_KEY to base64 of 32 random bytes (openssl rand -base64 32)",
  })
  .transform((value, context) => {
    const trimmed = value.trim();
    const key = Buffer.from(trimmed, "base64");
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32) {
      context.addIssue({
        code: "custom",
        message: `must be base64 of exactly 32 bytes (openssl rand -base64 32); the value given ${
          /^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)
            ? `decodes to ${key.length} bytes`
            : "is not base64"
        }`,
      });
      return z.NEVER;
    }
    return key;
  });

/**
 * The limits of an executor: what its worker runs at once, per tenant and per user, and what a
 * step may use. The embedded default reads the same settings (see {@link loadExecutorLimits}).
 */
const executorLimitsSchema = z.object({
  /** Steps this process runs at once. */
  concurrency: whole("concurrency", 1).max(256).default(4),
  /** Running steps of one tenant across all workers; 0 = unlimited. */
  tenantConcurrency: whole("tenant concurrency", 0).default(0),
  /**
   * Runs in flight (running or awaiting approval) per tenant and subject; 0 = unlimited.
   * Further runs of that user wait, queued, in submission order.
   */
  userConcurrency: whole("user concurrency", 0).default(0),
  /**
   * Memory of a process/sandbox step, all its processes together (its cgroup; RLIMIT_AS per
   * process where cgroups cannot be managed), in bytes; the memory limit of container steps.
   * Unset: 2 GiB for process/sandbox steps (see runtime/step-limits.ts), none for containers.
   */
  stepMemoryBytes: whole("step memory limit", 16 * 1024 * 1024).optional(),
  /**
   * Processes of a process/sandbox step at once (its cgroup; RLIMIT_NPROC of the step user
   * otherwise); the container pids limit. Unset: 1024 for process/sandbox steps, none for containers.
   */
  stepPids: whole("step process limit", 1).optional(),
  /**
   * Size of a process/sandbox/container step's workdir in bytes (a tmpfs of that size on a root
   * worker, charged to the step's memory); 0 turns the limit off. Default 1 GiB.
   */
  stepDiskBytes: whole("step workdir size", 0).optional(),
});

/** The limits part of the executor's settings. */
export type ExecutorLimits = z.infer<typeof executorLimitsSchema>;

const limitsEnvMap = {
  PACKRUN_EXECUTOR_CONCURRENCY: "concurrency",
  PACKRUN_EXECUTOR_TENANT_CONCURRENCY: "tenantConcurrency",
  PACKRUN_EXECUTOR_USER_CONCURRENCY: "userConcurrency",
  PACKRUN_EXECUTOR_STEP_MEMORY_BYTES: "stepMemoryBytes",
  PACKRUN_EXECUTOR_STEP_PIDS: "stepPids",
  PACKRUN_EXECUTOR_STEP_DISK_BYTES: "stepDiskBytes",
};

/**
 * Reads only the executor's limits from the environment (and PACKRUN_CONFIG), with the same
 * variables and defaults as a separate executor: what the embedded default runs with.
 * @throws PackrunError CONFIG_INVALID naming every bad variable
 */
export function loadExecutorLimits(env: NodeJS.ProcessEnv = process.env): ExecutorLimits {
  return loadConfig(executorLimitsSchema, { envMap: limitsEnvMap, env });
}

const executorConfigSchema = executorLimitsSchema.extend({
  databaseUrl: z
    .string({ error: "is required: set PACKRUN_EXECUTOR_DATABASE_URL or DATABASE_URL" })
    .pipe(postgresUrlSchema),
  redisUrl: z
    .string({ error: "is required: set PACKRUN_EXECUTOR_REDIS_URL or REDIS_URL" })
    .pipe(redisUrlSchema),
  plannerUrl: z
    .string()
    .regex(/^https?:\/\/[^\s/]+/, "expected an http:// or https:// URL of the planner")
    .default("http://127.0.0.1:7001"),
  secretsKey: secretsKeySchema,
  role: z.enum(["all", "api", "worker"]).default("all"),
  port: portSchema.default(defaultExecutorPort),
  host: z.string().min(1).default("127.0.0.1"),
  /** Plain HTTP port serving Prometheus `/metrics` on the same host (every role); unset: none. */
  metricsPort: portSchema.optional(),
  workRoot: z
    .string()
    .regex(/^\//, "must be an absolute path")
    .default(join(tmpdir(), "packrun-executor")),
  /** A step's claim is valid this long without a heartbeat. */
  leaseMs: whole("lease", 1000).default(15_000),
  /** SIGTERM: how long running steps may take to finish before they are handed back. */
  graceMs: whole("grace period", 0).default(30_000),
  /** A stopped or timed-out step: SIGTERM → this long → SIGKILL. */
  killGraceMs: whole("kill grace period", 0).default(5_000),
  queueName: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, "letters, digits, . _ - only")
    .default("packrun-steps"),
  queuePrefix: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, "letters, digits, . _ - only")
    .default("packrun"),
  workerId: z.string().min(1).max(200).optional(),
  /**
   * Largest artifact a step may declare, in bytes (its size as fstat reports it, checked before
   * hashing, so a sparse file cannot hold a slot). Default 4 GiB, the evidence store's default.
   */
  maxArtifactBytes: whole("artifact size cap", 1).default(4 * 1024 ** 3),
  /** How often the timekeeper fires schedules, starts waiting runs and ends runs past deadline. */
  timekeeperIntervalMs: whole("timekeeper interval", 50).default(1000),
  /** A schedule's due time found later than this counts as missed (its missed policy decides). */
  scheduleMissedGraceMs: whole("missed grace period", 0).default(60_000),
  evidenceUrl: z
    .string()
    .regex(/^https?:\/\/[^\s/]+/, "expected an http:// or https:// URL of the evidence service")
    .optional(),
  /**
   * JSON file of the approver public keys per tenant that offline approval responses are checked
   * against (docs/operations.md); read again at every import. Unset: offline responses are refused.
   */
  approverKeysFile: z.string().regex(/^\//, "must be an absolute path").optional(),
  /** TLS of its gRPC (PACKRUN_TLS_*) or the development-only opt-out. */
  rpc: rpcSecuritySchema,
  /** Bearer tokens on the public gRPC methods (PACKRUN_AUTH_*, as the gateway); unset: none. */
  auth: authConfigSchema.optional(),
  logLevel: logLevelSchema.default("info"),
});

/** The executor process's settings. */
export type ExecutorConfig = z.infer<typeof executorConfigSchema>;

// Later entries win: the executor-specific variables override the shared ones.
const envMap = {
  ...limitsEnvMap,
  DATABASE_URL: "databaseUrl",
  PACKRUN_EXECUTOR_DATABASE_URL: "databaseUrl",
  REDIS_URL: "redisUrl",
  PACKRUN_EXECUTOR_REDIS_URL: "redisUrl",
  PACKRUN_PLANNER_URL: "plannerUrl",
  PACKRUN_EVIDENCE_URL: "evidenceUrl",
  PACKRUN_SECRETS_KEY: "secretsKey",
  PACKRUN_EXECUTOR_ROLE: "role",
  PACKRUN_EXECUTOR_PORT: "port",
  PACKRUN_EXECUTOR_HOST: "host",
  PACKRUN_EXECUTOR_METRICS_PORT: "metricsPort",
  PACKRUN_EXECUTOR_WORK_ROOT: "workRoot",
  PACKRUN_EXECUTOR_LEASE_MS: "leaseMs",
  PACKRUN_EXECUTOR_GRACE_MS: "graceMs",
  PACKRUN_EXECUTOR_KILL_GRACE_MS: "killGraceMs",
  PACKRUN_EXECUTOR_QUEUE_NAME: "queueName",
  PACKRUN_EXECUTOR_QUEUE_PREFIX: "queuePrefix",
  PACKRUN_EXECUTOR_WORKER_ID: "workerId",
  PACKRUN_EXECUTOR_TIMEKEEPER_INTERVAL_MS: "timekeeperIntervalMs",
  PACKRUN_EXECUTOR_SCHEDULE_MISSED_GRACE_MS: "scheduleMissedGraceMs",
  PACKRUN_EXECUTOR_MAX_ARTIFACT_BYTES: "maxArtifactBytes",
  PACKRUN_APPROVER_KEYS_FILE: "approverKeysFile",
  ...rpcSecurityEnvMap,
  ...authEnvMap,
  PACKRUN_LOG_LEVEL: "logLevel",
};

/**
 * Reads the executor's settings from the environment (and the optional PACKRUN_CONFIG file).
 * @throws PackrunError CONFIG_INVALID naming every bad or missing variable (never its value)
 */
export function loadExecutorConfig(env: NodeJS.ProcessEnv = process.env): ExecutorConfig {
  return loadConfig(executorConfigSchema, { envMap, env });
}
