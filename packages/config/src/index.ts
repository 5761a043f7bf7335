export {
  logLevelSchema,
  portSchema,
  postgresUrlSchema,
  type RpcSecurityConfig,
  redisUrlSchema,
  rpcSecurityEnvMap,
  rpcSecuritySchema,
} from "./common-schemas.ts";
export { type LoadConfigOptions, loadConfig } from "./load-config.ts";
