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

/** Port the planner listens on when PACKRUN_PLANNER_PORT is not set. */
export const defaultPlannerPort = 7001;

const plannerConfigSchema = z.object({
  databaseUrl: z
    .string({ error: "is required: set PACKRUN_PLANNER_DATABASE_URL or DATABASE_URL" })
    .pipe(postgresUrlSchema),
  port: portSchema.default(defaultPlannerPort),
  host: z.string().min(1).default("127.0.0.1"),
  /** Plain HTTP port serving Prometheus `/metrics` on the same host; unset: none. */
  metricsPort: portSchema.optional(),
  /** TLS of its gRPC (PACKRUN_TLS_*) or the development-only opt-out. */
  rpc: rpcSecuritySchema,
  /** Bearer tokens on the public gRPC methods (PACKRUN_AUTH_*, as the gateway); unset: none. */
  auth: authConfigSchema.optional(),
  logLevel: logLevelSchema.default("info"),
});

/** The planner process's settings. */
export type PlannerConfig = z.infer<typeof plannerConfigSchema>;

// Later entries win: the planner-specific URL overrides the shared DATABASE_URL.
const envMap = {
  DATABASE_URL: "databaseUrl",
  PACKRUN_PLANNER_DATABASE_URL: "databaseUrl",
  PACKRUN_PLANNER_PORT: "port",
  PACKRUN_PLANNER_HOST: "host",
  PACKRUN_PLANNER_METRICS_PORT: "metricsPort",
  ...rpcSecurityEnvMap,
  ...authEnvMap,
  PACKRUN_LOG_LEVEL: "logLevel",
};

/**
 * Reads the planner's settings from the environment (and the optional PACKRUN_CONFIG file).
 * @throws PackrunError CONFIG_INVALID naming every bad or missing variable
 */
export function loadPlannerConfig(env: NodeJS.ProcessEnv = process.env): PlannerConfig {
  return loadConfig(plannerConfigSchema, { envMap, env });
}
