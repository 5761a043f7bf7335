import { keySetPem, loadVerificationKey, verificationKeyJwk } from "@packrun/attestation";
import { Type } from "typebox";
import { SigningKeysJwksSchema } from "../api-schemas.ts";
import type { GatewayApp, GatewayContext } from "../gateway-context.ts";
import { withProblems } from "../route-helpers.ts";

/** Public keys change rarely (rotation); verifiers and caches may keep them for five minutes. */
const cacheControl = "public, max-age=300";

/** How long the gateway reuses the evidence service's answer; a rotation shows within this. */
const keyCacheMs = 30_000;

/**
 * The evidence service's public verification keys where a verifier expects them, without a
 * token: a bundle or attestation is verified offline by someone who may hold no packrun account,
 * and public keys are not secret. Retired keys stay listed so old signatures keep verifying.
 * The authenticated `/api/verification-keys` serves the same keys in packrun's own shape.
 */
export function registerSigningKeyRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  const fetchKeys = async () => {
    const { keys } = await clients.evidence.listVerificationKeys({});
    return keys.map((key) => ({
      ...loadVerificationKey(key.publicKeyPem, `verification key ${key.keyId}`),
      active: key.active,
    }));
  };
  // Anyone may call these routes: answer from a short-lived copy so that a flood of anonymous
  // requests does not become a flood of calls to the evidence service. Failures are not kept.
  let cached: { at: number; keys: ReturnType<typeof fetchKeys> } | undefined;
  const loadKeys = () => {
    if (cached === undefined || Date.now() - cached.at > keyCacheMs) {
      const keys = fetchKeys();
      const entry = { at: Date.now(), keys };
      cached = entry;
      keys.catch(() => {
        if (cached === entry) cached = undefined;
      });
    }
    return cached.keys;
  };

  app.get(
    "/.well-known/packrun/signing-keys",
    {
      schema: {
        tags: ["evidence"],
        operationId: "getSigningKeys",
        summary: "Public keys that verify attestations and bundles, as a JWK Set (no token)",
        description:
          "Every key that verifies evidence signatures (the active signing key and retired ones), " +
          "as RFC 7517 JWKs with `kid` (packrun's key id: SHA-256 of the SPKI DER), `use: sig` " +
          "and `alg` (`EdDSA` or `ES256`). Save it and pass it to `packrun verify --key`.",
        security: [],
        produces: ["application/jwk-set+json"],
        response: withProblems({ 200: SigningKeysJwksSchema }),
      },
    },
    async (_request, reply) => {
      const keys = (await loadKeys()).map(verificationKeyJwk);
      return reply.header("cache-control", cacheControl).type("application/jwk-set+json").send({
        keys,
      });
    },
  );

  app.get(
    "/.well-known/packrun/signing-keys.pem",
    {
      schema: {
        tags: ["evidence"],
        operationId: "getSigningKeysPem",
        summary: "The same public keys as PEM (no token)",
        description:
          "Each key's SPKI PEM after a `# key id <kid> (<algorithm>, active|retired)` line; " +
          "usable with `packrun verify --key` and, one key at a time, with OpenSSL.",
        security: [],
        produces: ["application/x-pem-file"],
        response: withProblems({ 200: Type.String() }),
      },
    },
    async (_request, reply) =>
      reply
        .header("cache-control", cacheControl)
        .type("application/x-pem-file")
        .send(keySetPem(await loadKeys())),
  );
}
