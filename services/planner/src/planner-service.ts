import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { PackrunError } from "@packrun/errors";
import {
  PackValidationError,
  type PlannedPack,
  type PlanningPool,
  sharedPlanningPool,
  simulatePlan,
} from "@packrun/planning";
import type { PackSource } from "@packrun/proto/pack/v1";
import {
  type PackVersion,
  PackVersionSchema,
  type PlannerService,
} from "@packrun/proto/planner/v1";
import type { PackRegistry, PackVersionRecord } from "./pack-registry.ts";
import {
  declaredOutputMessage,
  diagnosticMessage,
  planSummaryMessage,
  simulatedStepMessage,
} from "./plan-messages.ts";
import { checkPackName, checkTenant, checkVersion } from "./request-arguments.ts";

/** A registry version as a `packrun.planner.v1.PackVersion`. */
export function packVersionMessage(record: PackVersionRecord): PackVersion {
  return create(PackVersionSchema, {
    name: record.name,
    version: record.version,
    digest: record.digest,
    description: record.description,
    tags: record.tags,
    publishedAt: timestampFromDate(record.publishedAt),
    publishedBy: record.publishedBy,
  });
}

/** What a plan or simulation request names: tenant, pack source, inputs, secret names. */
interface PlanRequest {
  tenant: string;
  pack?: PackSource | undefined;
  inputs?: JsonObject | undefined;
  suppliedSecretNames: string[];
}

/**
 * The PlannerService handlers over a pack registry and @packrun/planning. Manifests are parsed and
 * planned in `planning`'s threads, never on the service's event loop. Handlers throw
 * PackrunErrors; the RPC server's interceptor maps them to Connect codes and Diagnostics details.
 */
export function createPlannerService(
  registry: PackRegistry,
  planning: PlanningPool = sharedPlanningPool(),
): ServiceImpl<typeof PlannerService> {
  /** The manifest text a request plans: inline, or resolved from the tenant's registry. */
  async function resolveManifest(request: PlanRequest): Promise<string> {
    const source = request.pack?.source;
    switch (source?.case) {
      case "manifest":
        if (source.value === "")
          throw new PackrunError("REQUEST_INVALID", "pack.manifest is empty");
        return source.value;
      case "ref": {
        const tenant = checkTenant(request.tenant);
        const name = checkPackName(source.value.name, "pack.ref.name");
        // An empty version plans the latest, as GetPackVersion does; the response names it.
        const version = checkVersion(source.value.version, {
          allowLatest: true,
          field: "pack.ref.version",
        });
        return (await registry.get({ tenant, name, version })).manifest;
      }
      default:
        throw new PackrunError(
          "REQUEST_INVALID",
          "pack is required: give an inline manifest or a ref to a published version",
        );
    }
  }

  async function plan(request: PlanRequest): Promise<{ manifest: string; result: PlannedPack }> {
    const manifest = await resolveManifest(request);
    const result = await planning.plan(manifest, {
      inputs: request.inputs ?? {},
      // proto3 cannot tell "none" from "not given": an empty list plans without checking
      // secrets (a preview); the executor checks them again at submission.
      ...(request.suppliedSecretNames.length > 0
        ? { suppliedSecretNames: request.suppliedSecretNames }
        : {}),
    });
    return { manifest, result };
  }

  return {
    async validateManifest(request) {
      try {
        const metadata = await planning.inspect(request.manifest);
        return {
          valid: true,
          diagnostics: [],
          packName: metadata.name,
          packVersion: metadata.version,
        };
      } catch (error) {
        if (!(error instanceof PackValidationError)) throw error;
        return {
          valid: false,
          diagnostics: error.diagnostics.map((diagnostic) => diagnosticMessage(diagnostic)),
        };
      }
    },

    async planPack(request) {
      const { manifest, result } = await plan(request);
      return {
        planHash: result.planHash,
        planJson: result.planJson,
        summary: planSummaryMessage(result),
        manifest,
      };
    },

    async simulatePack(request) {
      const { result } = await plan(request);
      const simulation = simulatePlan(result);
      return {
        planHash: simulation.planHash,
        steps: simulation.steps.map(simulatedStepMessage),
        outputs: simulation.outputs.map(declaredOutputMessage),
        summary: planSummaryMessage(result),
      };
    },

    async registerPack(request) {
      const { version, created } = await registry.register(request);
      return { version: packVersionMessage(version), created };
    },

    async getPackVersion(request) {
      const published = await registry.get(request);
      return { version: packVersionMessage(published), manifest: published.manifest };
    },

    async listPacks(request) {
      const page = await registry.listPacks(request);
      return {
        packs: page.items.map((pack) => ({
          name: pack.name,
          latest: packVersionMessage(pack.latest),
          versionCount: pack.versionCount,
        })),
        nextPageToken: page.nextPageToken,
      };
    },

    async listPackVersions(request) {
      const page = await registry.listVersions(request);
      return { versions: page.items.map(packVersionMessage), nextPageToken: page.nextPageToken };
    },
  };
}
