import { authConfigSchema, authEnvMap } from "@packrun/auth";
import {
  loadConfig,
  logLevelSchema,
  portSchema,
  postgresUrlSchema,
  rpcSecurityEnvMap,
  rpcSecuritySchema,
} from "@packrun/config";
import { z } from "zod";
import type { S3ArtifactStoreOptions } from "./s3-artifact-store.ts";

/** Port the evidence service listens on when PACKRUN_EVIDENCE_PORT is not set. */
export const defaultEvidencePort = 7003;

const byteCount = z.coerce.number().int().min(0);
const pathList = z.string().transform((value) =>
  value
    .split(",")
    .map((path) => path.trim())
    .filter((path) => path !== ""),
);

const evidenceConfigSchema = z
  .object({
    databaseUrl: z
      .string({ error: "is required: set PACKRUN_EVIDENCE_DATABASE_URL or DATABASE_URL" })
      .pipe(postgresUrlSchema),
    port: portSchema.default(defaultEvidencePort),
    host: z.string().min(1).default("127.0.0.1"),
    /** Plain HTTP port serving Prometheus `/metrics` on the same host; unset: none. */
    metricsPort: portSchema.optional(),
    artifactRoot: z.string().min(1).optional(),
    /** Artifact content in this S3-compatible bucket instead of under artifactRoot. */
    s3Bucket: z.string().min(3).optional(),
    s3Endpoint: z.url({ protocol: /^https?$/ }).optional(),
    s3Region: z.string().min(1).default("us-east-1"),
    s3Prefix: z.string().default(""),
    s3ForcePathStyle: z.union([z.boolean(), z.stringbool()]).default(false),
    s3AccessKeyId: z.string().min(1).optional(),
    s3SecretAccessKey: z.string().min(1).optional(),
    s3PartSizeBytes: byteCount.min(5 * 1024 * 1024).default(8 * 1024 * 1024),
    s3UploadConcurrency: z.coerce.number().int().min(1).max(16).default(2),
    signingKeyPath: z.string().min(1).optional(),
    verificationKeyPaths: pathList.default([]),
    devKeyPath: z.string().min(1).optional(),
    bundleArtifactMaxBytes: byteCount.default(16 * 1024 ** 2),
    maxArtifactBytes: byteCount.default(4 * 1024 ** 3),
    subscriberMaxBacklog: z.coerce.number().int().min(1).default(10_000),
    /** TLS of its gRPC (PACKRUN_TLS_*) or the development-only opt-out. */
    rpc: rpcSecuritySchema,
    /** Bearer tokens on the public gRPC methods (PACKRUN_AUTH_*, as the gateway); unset: none. */
    auth: authConfigSchema.optional(),
    logLevel: logLevelSchema.default("info"),
  })
  .refine((config) => config.artifactRoot !== undefined || config.s3Bucket !== undefined, {
    message:
      "is required: set PACKRUN_EVIDENCE_ARTIFACT_ROOT, or PACKRUN_EVIDENCE_S3_BUCKET for an object store",
    path: ["artifactRoot"],
  })
  .refine(
    (config) => (config.s3AccessKeyId === undefined) === (config.s3SecretAccessKey === undefined),
    {
      message:
        "set both PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID and PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY, or neither (the AWS SDK's default credentials)",
      path: ["s3AccessKeyId"],
    },
  )
  .refine((config) => config.signingKeyPath !== undefined || config.devKeyPath !== undefined, {
    message:
      "no signing key: set PACKRUN_EVIDENCE_SIGNING_KEY (or PACKRUN_EVIDENCE_DEV_KEY_PATH for development)",
    path: ["signingKeyPath"],
  });

/** The evidence process's settings. */
export type EvidenceConfig = z.infer<typeof evidenceConfigSchema>;

// Later entries win: the evidence-specific URL overrides the shared DATABASE_URL.
const envMap = {
  DATABASE_URL: "databaseUrl",
  PACKRUN_EVIDENCE_DATABASE_URL: "databaseUrl",
  PACKRUN_EVIDENCE_PORT: "port",
  PACKRUN_EVIDENCE_HOST: "host",
  PACKRUN_EVIDENCE_METRICS_PORT: "metricsPort",
  PACKRUN_EVIDENCE_ARTIFACT_ROOT: "artifactRoot",
  PACKRUN_EVIDENCE_S3_BUCKET: "s3Bucket",
  PACKRUN_EVIDENCE_S3_ENDPOINT: "s3Endpoint",
  PACKRUN_EVIDENCE_S3_REGION: "s3Region",
  PACKRUN_EVIDENCE_S3_PREFIX: "s3Prefix",
  PACKRUN_EVIDENCE_S3_FORCE_PATH_STYLE: "s3ForcePathStyle",
  PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID: "s3AccessKeyId",
  PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY: "s3SecretAccessKey",
  PACKRUN_EVIDENCE_S3_PART_SIZE_BYTES: "s3PartSizeBytes",
  PACKRUN_EVIDENCE_S3_UPLOAD_CONCURRENCY: "s3UploadConcurrency",
  PACKRUN_EVIDENCE_SIGNING_KEY: "signingKeyPath",
  PACKRUN_EVIDENCE_VERIFICATION_KEYS: "verificationKeyPaths",
  PACKRUN_EVIDENCE_DEV_KEY_PATH: "devKeyPath",
  PACKRUN_EVIDENCE_BUNDLE_ARTIFACT_MAX_BYTES: "bundleArtifactMaxBytes",
  PACKRUN_EVIDENCE_MAX_ARTIFACT_BYTES: "maxArtifactBytes",
  PACKRUN_EVIDENCE_SUBSCRIBER_MAX_BACKLOG: "subscriberMaxBacklog",
  ...rpcSecurityEnvMap,
  ...authEnvMap,
  PACKRUN_LOG_LEVEL: "logLevel",
};

/**
 * Reads the evidence service's settings from the environment (and the optional PACKRUN_CONFIG
 * file). PACKRUN_EVIDENCE_VERIFICATION_KEYS is a comma-separated list of PEM paths.
 * @throws PackrunError CONFIG_INVALID naming every bad or missing variable
 */
export function loadEvidenceConfig(env: NodeJS.ProcessEnv = process.env): EvidenceConfig {
  return loadConfig(evidenceConfigSchema, { envMap, env });
}

/** The object store settings of `config`, or undefined when artifacts stay on the filesystem. */
export function objectStoreOptions(config: EvidenceConfig): S3ArtifactStoreOptions | undefined {
  if (config.s3Bucket === undefined) return undefined;
  return {
    bucket: config.s3Bucket,
    region: config.s3Region,
    prefix: config.s3Prefix,
    forcePathStyle: config.s3ForcePathStyle,
    partSizeBytes: config.s3PartSizeBytes,
    uploadConcurrency: config.s3UploadConcurrency,
    ...(config.s3Endpoint === undefined ? {} : { endpoint: config.s3Endpoint }),
    ...(config.s3AccessKeyId === undefined || config.s3SecretAccessKey === undefined
      ? {}
      : {
          credentials: {
            accessKeyId: config.s3AccessKeyId,
            secretAccessKey: config.s3SecretAccessKey,
          },
        }),
  };
}
