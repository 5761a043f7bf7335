import { timestampDate } from "@bufbuild/protobuf/wkt";
import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { Type } from "typebox";
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
import { MeasurementCache } from "../measurement-cache.ts";
import { measure, sendFixedDownload, verifiedReplay } from "../ranged-download.ts";
import { bearerSecurity, mediaResponse, withProblems } from "../route-helpers.ts";
import { streamedBody } from "../streamed-body.ts";

const etagHeader = {
  type: "string",
  description: "Strong entity tag of the bytes: send it back in If-None-Match or If-Range.",
};

/** The 200, 206 and 304 answers of a download route, as the OpenAPI document lists them. */
function downloadResponses(what: string, mediaType: string) {
  return withProblems({
    200: {
      ...mediaResponse(what, [mediaType], BinarySchema),
      headers: {
        etag: etagHeader,
        "accept-ranges": { type: "string", description: "`bytes`: single ranges are honoured." },
      },
    },
    206: {
      ...mediaResponse(
        `The requested byte range of ${what.toLowerCase()}`,
        [mediaType],
        BinarySchema,
      ),
      headers: {
        etag: etagHeader,
        "content-range": { type: "string", description: "`bytes <first>-<last>/<size>`" },
      },
    },
    304: {
      description: "Not modified: If-None-Match names the current ETag",
      type: "null",
      headers: { etag: etagHeader },
    },
  });
}

/** The conditional and range request headers a download honours. */
const DownloadHeadersSchema = Type.Object({
  range: Type.Optional(
    Type.String({ description: "One byte range, e.g. `bytes=1048576-`, to resume a download." }),
  ),
  "if-range": Type.Optional(
    Type.String({ description: "The ETag the range applies to; otherwise the whole is sent." }),
  ),
  "if-none-match": Type.Optional(
    Type.String({ description: "ETags already held: 304 when one is current." }),
  ),
});

// Bundles whose length and digest the gateway remembers (a few dozen bytes each).
const bundleMeasurementsKept = 1_000;

async function* chunksOf(stream: AsyncIterable<{ chunk: Uint8Array }>) {
  for await (const message of stream) yield message.chunk;
}

// Quoted-string form of Content-Disposition filenames: only a conservative character set.
function safeFilename(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200) || "artifact";
}

/** Artifacts, attestations, evidence bundles and the keys that verify them. */
export function registerEvidenceRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  const bundleMeasurements = new MeasurementCache(bundleMeasurementsKept);
  app.get(
    "/api/runs/:id/artifacts",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        operationId: "listArtifacts",
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
        operationId: "downloadArtifact",
        summary: "Download one artifact by digest",
        security: bearerSecurity(scopes.read),
        params: ArtifactParamsSchema,
        headers: DownloadHeadersSchema,
        description:
          "Sends `ETag` (the digest) and `Accept-Ranges: bytes`: `If-None-Match` answers 304, a single `Range` (with `If-Range`) answers 206 so interrupted downloads resume, a range past the end 416.",
        response: downloadResponses("The artifact's bytes", "application/octet-stream"),
      },
    },
    async (request, reply) => {
      const tenant = principalOf(request).tenant;
      const { id, digest } = request.params;
      const { artifacts } = await clients.evidence.listArtifacts({ tenant, runId: id });
      const artifact = artifacts.find((candidate) => candidate.digest === digest);
      if (artifact === undefined)
        throw new PackrunError("ARTIFACT_NOT_FOUND", `run ${id} has no artifact ${digest}`);
      const hex = digest.slice("sha256:".length);
      return sendFixedDownload(request, reply, {
        etag: `"${digest}"`,
        size: Number(artifact.sizeBytes),
        contentType: "application/octet-stream",
        headers: {
          "repr-digest": `sha-256=:${Buffer.from(hex, "hex").toString("base64")}:`,
          "content-disposition": `attachment; filename="${safeFilename(artifact.name)}"`,
        },
        open: () => streamedBody(clients.evidence.getArtifact({ tenant, runId: id, digest })),
      });
    },
  );

  app.get(
    "/api/runs/:id/attestation",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        operationId: "getAttestation",
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
        operationId: "downloadBundle",
        summary: "Download the finished run's evidence bundle (.tar.gz), verifiable offline",
        security: bearerSecurity(scopes.read),
        params: RunIdParamsSchema,
        headers: DownloadHeadersSchema,
        description:
          "The bundle is deterministic: `ETag` is its SHA-256, `If-None-Match` answers 304, and a single `Range` (with `If-Range`) answers 206 so a large bundle's download resumes; a range past the end answers 416.",
        response: downloadResponses("The evidence bundle", "application/gzip"),
      },
    },
    async (request, reply) => {
      const tenant = principalOf(request).tenant;
      const id = request.params.id;
      // The evidence service streams the bundle without announcing its length or digest:
      // read it once to learn both (it is rebuilt identically every time; remembered for the
      // next request), then send it, checking the read against the measurement so a resume
      // never splices other bytes.
      const key = `${tenant}/${id}`;
      const measured =
        bundleMeasurements.get(key) ??
        (await measure(chunksOf(clients.evidence.getBundle({ tenant, runId: id }))));
      bundleMeasurements.set(key, measured);
      return sendFixedDownload(request, reply, {
        etag: `"sha256:${measured.sha256}"`,
        size: measured.size,
        contentType: "application/gzip",
        headers: {
          "repr-digest": `sha-256=:${Buffer.from(measured.sha256, "hex").toString("base64")}:`,
          "content-disposition": `attachment; filename="packrun-evidence-${safeFilename(id)}.tar.gz"`,
        },
        open: async () =>
          verifiedReplay(
            chunksOf(clients.evidence.getBundle({ tenant, runId: id })),
            measured,
            () => bundleMeasurements.delete(key),
          ),
      });
    },
  );

  app.get(
    "/api/verification-keys",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["evidence"],
        operationId: "listVerificationKeys",
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
