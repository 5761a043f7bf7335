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

const truthy = z.enum(["1", "true", "yes"]);

/**
 * How a service secures its gRPC (as server and as client): the PEM files of the internal CA and
 * of its own certificate and key, or, on a development machine only, an explicit, loudly named
 * opt-out. Neither is a configuration error: the services fail closed.
 */
export const rpcSecuritySchema = z
  .object({
    tlsCa: z.string().min(1).optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    insecureNoAuth: z
      .union([
        z.boolean(),
        truthy.transform(() => true),
        z.enum(["0", "false", "no"]).transform(() => false),
      ])
      .default(false),
  })
  .superRefine((rpc, context) => {
    const given = [rpc.tlsCa, rpc.tlsCert, rpc.tlsKey].filter((file) => file !== undefined);
    if (given.length > 0 && given.length < 3)
      context.addIssue({
        code: "custom",
        path: [],
        message:
          "set all three of PACKRUN_TLS_CA, PACKRUN_TLS_CERT and PACKRUN_TLS_KEY (the internal CA, this service's certificate and its key)",
      });
    else if (given.length === 3 && rpc.insecureNoAuth)
      context.addIssue({
        code: "custom",
        path: ["insecureNoAuth"],
        message: "PACKRUN_RPC_INSECURE_NO_AUTH contradicts PACKRUN_TLS_*: unset one of them",
      });
    else if (given.length === 0 && !rpc.insecureNoAuth)
      context.addIssue({
        code: "custom",
        path: [],
        message:
          "is required: set PACKRUN_TLS_CA, PACKRUN_TLS_CERT and PACKRUN_TLS_KEY (the internal CA, this service's certificate and its key; see deploy/make-secrets.sh), or PACKRUN_RPC_INSECURE_NO_AUTH=true on a development machine only",
      });
  })
  .prefault(() => ({}));

/** Settings of {@link rpcSecuritySchema}. */
export type RpcSecurityConfig = z.infer<typeof rpcSecuritySchema>;

/** Environment variables of {@link rpcSecuritySchema}, for a config under the key `rpc`. */
export const rpcSecurityEnvMap = {
  PACKRUN_TLS_CA: "rpc.tlsCa",
  PACKRUN_TLS_CERT: "rpc.tlsCert",
  PACKRUN_TLS_KEY: "rpc.tlsKey",
  PACKRUN_RPC_INSECURE_NO_AUTH: "rpc.insecureNoAuth",
} as const;
