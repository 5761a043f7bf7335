import { authConfigSchema, authEnvMap } from "@packrun/auth";
import {
  loadConfig,
  logLevelSchema,
  portSchema,
  rpcSecurityEnvMap,
  rpcSecuritySchema,
} from "@packrun/config";
import { z } from "zod";
import { defaultRateLimits } from "./rate-limits.ts";

/** Port the gateway listens on when PACKRUN_GATEWAY_PORT is not set. */
export const defaultGatewayPort = 8080;

const serviceUrl = (service: string, port: number) =>
  z
    .string()
    .regex(/^https?:\/\/[^\s/]+/, `expected an http:// or https:// URL of the ${service}`)
    .default(`http://127.0.0.1:${port}`);

// With no PACKRUN_AUTH_* at all, report each missing setting rather than a missing object.
const authSchema = authConfigSchema.prefault(() => ({}) as { issuer: string; audience: string });

const gatewayConfigSchema = z.object({
  port: portSchema.default(defaultGatewayPort),
  host: z.string().min(1).default("127.0.0.1"),
  plannerUrl: serviceUrl("planner", 7001),
  executorUrl: serviceUrl("executor", 7002),
  evidenceUrl: serviceUrl("evidence", 7003),
  auth: authSchema,
  bodyLimitBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(4 * 1024 * 1024),
  sseHeartbeatSeconds: z.coerce.number().int().min(1).max(300).default(15),
  /** Requests per minute per bearer token; 0 turns the limit off. */
  rateLimitPerToken: z.coerce.number().int().min(0).default(defaultRateLimits.perTokenPerMinute),
  /** Requests per minute per tenant (all its tokens); 0 turns the limit off. */
  rateLimitPerTenant: z.coerce.number().int().min(0).default(defaultRateLimits.perTenantPerMinute),
  /** TLS of its gRPC (PACKRUN_TLS_*) or the development-only opt-out. */
  rpc: rpcSecuritySchema,
  logLevel: logLevelSchema.default("info"),
});

/** The gateway process's settings. */
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;

/** Token verification settings (the `auth` part of the config). */
export type { AuthConfig } from "@packrun/auth";
/** JWS algorithms the gateway accepts unless configured otherwise. */
export { defaultAlgorithms } from "@packrun/auth";

const envMap = {
  PACKRUN_GATEWAY_PORT: "port",
  PACKRUN_GATEWAY_HOST: "host",
  PACKRUN_PLANNER_URL: "plannerUrl",
  PACKRUN_EXECUTOR_URL: "executorUrl",
  PACKRUN_EVIDENCE_URL: "evidenceUrl",
  ...authEnvMap,
  PACKRUN_GATEWAY_BODY_LIMIT_BYTES: "bodyLimitBytes",
  PACKRUN_GATEWAY_SSE_HEARTBEAT_SECONDS: "sseHeartbeatSeconds",
  PACKRUN_GATEWAY_RATE_LIMIT_PER_TOKEN: "rateLimitPerToken",
  PACKRUN_GATEWAY_RATE_LIMIT_PER_TENANT: "rateLimitPerTenant",
  ...rpcSecurityEnvMap,
  PACKRUN_LOG_LEVEL: "logLevel",
};

/**
 * Reads the gateway's settings from the environment (and the optional PACKRUN_CONFIG file).
 * @throws PackrunError CONFIG_INVALID naming every bad or missing variable
 */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return loadConfig(gatewayConfigSchema, { envMap, env });
}
