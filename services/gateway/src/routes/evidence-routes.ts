import { timestampDate } from "@bufbuild/protobuf/wkt";
import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { artifactJson } from "../api-json.ts";
import {
  ArtifactParamsSchema,
  AttestationResponseSchema,
  BinarySchema,
  ListArtifactsResponseSchema,
  RunIdParamsSchema,
  VerificationKeysResponseSchema,
} from "../api-schemas.ts";
import { isRunUnknownToEvidence } from "../downstream-errors.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";
import { streamedBody } from "../streamed-body.ts";

// Quoted-string form of Content-Disposition filenames: only a conservative character set.
function safeFilename(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200) || "artifact";
}

/** Artifacts, attestations, evidence bundles and the keys that verify them. */
export function registerEvidenceRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  app.get(
    "/api/runs/:id/artifacts",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        summary: "The run's artifacts with their SHA-256 digests",
        security: bearerSecurity(scopes.read),
        params: RunIdParamsSchema,
        response: withProblems({ 200: ListArtifactsResponseSchema }),
      },
    },
    async (request) => {
      const tenant = principalOf(request).tenant;
      // The executor decides what exists for the tenant; evidence may not know the run yet.
      const { run } = await clients.executor.getRun({ tenant, runId: request.params.id });
      if (run === undefined)
        throw new PackrunError("RUN_NOT_FOUND", `run ${request.params.id} not found`);
      try {
        const response = await clients.evidence.listArtifacts({ tenant, runId: run.id });
        return { artifacts: response.artifacts.map(artifactJson) };
      } catch (error) {
        if (isRunUnknownToEvidence(error)) return { artifacts: [] };
        throw error;
      }
    },
  );

  app.get(
    "/api/runs/:id/artifacts/:digest",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        summary: "Download one artifact by digest",
        security: bearerSecurity(scopes.read),
        params: ArtifactParamsSchema,
        produces: ["application/octet-stream"],
        response: withProblems({ 200: BinarySchema }),
      },
    },
    async (request, reply) => {
      const tenant = principalOf(request).tenant;
      const { id, digest } = request.params;
      const { artifacts } = await clients.evidence.listArtifacts({ tenant, runId: id });
      const artifact = artifacts.find((candidate) => candidate.digest === digest);
      if (artifact === undefined)
        throw new PackrunError("ARTIFACT_NOT_FOUND", `run ${id} has no artifact ${digest}`);
      const body = await streamedBody(clients.evidence.getArtifact({ tenant, runId: id, digest }));
      const hex = digest.slice("sha256:".length);
      return reply
        .type("application/octet-stream")
        .header("content-length", String(artifact.sizeBytes))
        .header("etag", `"${digest}"`)
        .header("repr-digest", `sha-256=:${Buffer.from(hex, "hex").toString("base64")}:`)
        .header("content-disposition", `attachment; filename="${safeFilename(artifact.name)}"`)
        .send(body);
    },
  );

  app.get(
    "/api/runs/:id/attestation",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        summary: "The finished run's signed DSSE attestation",
        security: bearerSecurity(scopes.read),
        params: RunIdParamsSchema,
        response: withProblems({ 200: AttestationResponseSchema }),
      },
    },
    async (request) => {
      const tenant = principalOf(request).tenant;
      const { attestation } = await clients.evidence.getAttestation({
        tenant,
        runId: request.params.id,
      });
      if (attestation === undefined)
        throw new PackrunError(
          "ATTESTATION_NOT_FOUND",
          `run ${request.params.id} has no attestation`,
        );
      return {
        runId: attestation.runId,
        keyId: attestation.keyId,
        ...(attestation.createdAt === undefined
          ? {}
          : { createdAt: timestampDate(attestation.createdAt).toISOString() }),
        envelope: JSON.parse(attestation.envelopeJson) as Record<string, unknown>,
      };
    },
  );

  app.get(
    "/api/runs/:id/bundle",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        summary: "Download the finished run's evidence bundle (.tar.gz), verifiable offline",
        security: bearerSecurity(scopes.read),
        params: RunIdParamsSchema,
        produces: ["application/gzip"],
        response: withProblems({ 200: BinarySchema }),
      },
    },
    async (request, reply) => {
      const tenant = principalOf(request).tenant;
      const id = request.params.id;
      const body = await streamedBody(clients.evidence.getBundle({ tenant, runId: id }));
      return reply
        .type("application/gzip")
        .header(
          "content-disposition",
          `attachment; filename="packrun-evidence-${safeFilename(id)}.tar.gz"`,
        )
        .send(body);
    },
  );

  app.get(
    "/api/verification-keys",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        summary: "Public keys that verify attestations and bundles",
        security: bearerSecurity(scopes.read),
        response: withProblems({ 200: VerificationKeysResponseSchema }),
      },
    },
    async () => {
      const { keys } = await clients.evidence.listVerificationKeys({});
      return {
        keys: keys.map((key) => ({
          keyId: key.keyId,
          algorithm: key.algorithm,
          publicKeyPem: key.publicKeyPem,
          active: key.active,
        })),
      };
    },
  );
}
