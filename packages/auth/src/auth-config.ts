import { z } from "zod";

/** JWS algorithms accepted unless configured otherwise; `none` is never accepted. */
export const defaultAlgorithms = ["ES256", "ES384", "RS256", "PS256", "EdDSA"] as const;

const asymmetricAlgorithm = z.enum([
  "ES256",
  "ES384",
  "ES512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "EdDSA",
  "Ed25519",
]);

/**
 * Token verification settings (`PACKRUN_AUTH_*`), the same for the gateway and for every
 * service that answers bearer tokens on its public gRPC methods.
 */
export const authConfigSchema = z
  .object({
    jwksFile: z.string().min(1).optional(),
    jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
    issuer: z.string({ error: "is required: set PACKRUN_AUTH_ISSUER" }).min(1),
    audience: z.string({ error: "is required: set PACKRUN_AUTH_AUDIENCE" }).min(1),
    // Asymmetric only: a shared HMAC secret would let every verifier mint tokens, and
    // accepting HS* next to RS* is the classic algorithm-confusion hole.
    algorithms: z
      .preprocess(
        (value) => (typeof value === "string" ? value.split(",").map((a) => a.trim()) : value),
        z.array(asymmetricAlgorithm).min(1),
      )
      .default([...defaultAlgorithms]),
    clockToleranceSeconds: z.coerce.number().int().min(0).max(300).default(30),
    tenantClaim: z.string().min(1).default("tenant"),
    groupsClaim: z.string().min(1).default("groups"),
  })
  .refine((auth) => (auth.jwksFile === undefined) !== (auth.jwksUrl === undefined), {
    message: "set exactly one of PACKRUN_AUTH_JWKS_FILE and PACKRUN_AUTH_JWKS_URL",
    // Also when other settings are missing, so one run of the process names them all.
    when: () => true,
  });

/** Token verification settings. */
export type AuthConfig = z.infer<typeof authConfigSchema>;

/** Environment variables of {@link authConfigSchema}, for a config under the key `auth`. */
export const authEnvMap = {
  PACKRUN_AUTH_JWKS_FILE: "auth.jwksFile",
  PACKRUN_AUTH_JWKS_URL: "auth.jwksUrl",
  PACKRUN_AUTH_ISSUER: "auth.issuer",
  PACKRUN_AUTH_AUDIENCE: "auth.audience",
  PACKRUN_AUTH_ALGORITHMS: "auth.algorithms",
  PACKRUN_AUTH_CLOCK_TOLERANCE_SECONDS: "auth.clockToleranceSeconds",
  PACKRUN_AUTH_TENANT_CLAIM: "auth.tenantClaim",
  PACKRUN_AUTH_GROUPS_CLAIM: "auth.groupsClaim",
} as const;
