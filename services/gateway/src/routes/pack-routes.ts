import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { packVersionJson } from "../api-json.ts";
import {
  GetPackVersionResponseSchema,
  ListPacksQuerySchema,
  ListPacksResponseSchema,
  ListPackVersionsResponseSchema,
  PackNameParamsSchema,
  PackVersionParamsSchema,
  PublishPackBodySchema,
  PublishPackResponseSchema,
} from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";

/** The tenant's pack registry: publish, list packs, list and read versions. */
export function registerPackRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  app.post(
    "/api/packs",
    {
      config: { scope: scopes.write },
      schema: {
        tags: ["packs"],
        operationId: "publishPackVersion",
        summary: "Publish a pack version (immutable once published)",
        description:
          "The body is JSON {manifest} or the pack.yaml text itself with Content-Type application/yaml. Re-publishing identical content answers 200 with created: false; different content under a published version is refused with PACK_VERSION_CONFLICT.",
        security: bearerSecurity(scopes.write),
        body: PublishPackBodySchema,
        response: withProblems({ 200: PublishPackResponseSchema, 201: PublishPackResponseSchema }),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const response = await clients.planner.registerPack({
        tenant: principal.tenant,
        manifest: request.body.manifest,
        publishedBy: principal.subject,
      });
      if (response.version === undefined)
        throw new PackrunError("INTERNAL", "planner returned no pack version");
      const pack = packVersionJson(response.version);
      request.log.info(
        { pack: pack.name, version: pack.version, created: response.created },
        "pack published",
      );
      return reply
        .code(response.created ? 201 : 200)
        .header(
          "location",
          `/api/packs/${encodeURIComponent(pack.name)}/versions/${encodeURIComponent(pack.version)}`,
        )
        .send({ pack, created: response.created });
    },
  );

  app.get(
    "/api/packs",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["packs"],
        operationId: "listPacks",
        summary: "The tenant's packs with their latest version",
        security: bearerSecurity(scopes.read),
        querystring: ListPacksQuerySchema,
        response: withProblems({ 200: ListPacksResponseSchema }),
      },
    },
    async (request) => {
      const response = await clients.planner.listPacks({
        tenant: principalOf(request).tenant,
        pageSize: request.query.pageSize ?? 50,
        pageToken: request.query.pageToken ?? "",
      });
      return {
        packs: response.packs.map((pack) => ({
          name: pack.name,
          latestVersion: pack.latest?.version ?? "",
          versionCount: pack.versionCount,
        })),
        ...(response.nextPageToken === "" ? {} : { nextPageToken: response.nextPageToken }),
      };
    },
  );

  app.get(
    "/api/packs/:name/versions",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["packs"],
        operationId: "listPackVersions",
        summary: "Published versions of a pack, highest first",
        security: bearerSecurity(scopes.read),
        params: PackNameParamsSchema,
        querystring: ListPacksQuerySchema,
        response: withProblems({ 200: ListPackVersionsResponseSchema }),
      },
    },
    async (request) => {
      const response = await clients.planner.listPackVersions({
        tenant: principalOf(request).tenant,
        name: request.params.name,
        pageSize: request.query.pageSize ?? 50,
        pageToken: request.query.pageToken ?? "",
      });
      return {
        versions: response.versions.map(packVersionJson),
        ...(response.nextPageToken === "" ? {} : { nextPageToken: response.nextPageToken }),
      };
    },
  );

  app.get(
    "/api/packs/:name/versions/:version",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["packs"],
        operationId: "getPackVersion",
        summary: "One published version with its manifest",
        security: bearerSecurity(scopes.read),
        params: PackVersionParamsSchema,
        response: withProblems({ 200: GetPackVersionResponseSchema }),
      },
    },
    async (request) => {
      const response = await clients.planner.getPackVersion({
        tenant: principalOf(request).tenant,
        name: request.params.name,
        version: request.params.version,
      });
      if (response.version === undefined)
        throw new PackrunError("PACK_NOT_FOUND", `pack ${request.params.name} not found`);
      return { pack: packVersionJson(response.version), manifest: response.manifest };
    },
  );
}
