export { type CreateLoggerOptions, createLogger, type Logger, runLogger } from "./logger.ts";
