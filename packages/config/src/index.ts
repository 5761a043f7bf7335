export { logLevelSchema, portSchema, postgresUrlSchema, redisUrlSchema } from "./common-schemas.ts";
export { type LoadConfigOptions, loadConfig } from "./load-config.ts";
