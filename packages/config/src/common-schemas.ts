import { z } from "zod";

/** A TCP port; 0 lets the OS choose (tests). */
export const portSchema = z.coerce.number().int().min(0).max(65535);

/** pino log levels. */
export const logLevelSchema = z.enum([
  "trace",
  "debug",
  "info",
  "warn",
  "error",
  "fatal",
  "silent",
]);

/** A postgres:// URL. */
export const postgresUrlSchema = z
  .string()
  .regex(/^postgres(ql)?:\/\//, "expected a postgres:// or postgresql:// URL");

/** A redis:// URL. */
export const redisUrlSchema = z.string().regex(/^rediss?:\/\//, "expected a redis:// URL");
