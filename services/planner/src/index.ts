/**
 * The planner service: validates, plans and simulates Task Packs over Connect/gRPC and owns the
 * per-tenant pack registry.
 */
export {
  createPackRegistry,
  manifestDigest,
  type PackListing,
  type PackRegistry,
  type PackVersionRecord,
  type Page,
  type PageRequest,
  type PublishedPack,
  type RegisterResult,
} from "./pack-registry.ts";
export { defaultPlannerPort, loadPlannerConfig, type PlannerConfig } from "./planner-config.ts";
export {
  type PlannerServer,
  type PlannerServerOptions,
  plannerMigrationsDir,
  plannerSchema,
  startPlannerServer,
} from "./planner-server.ts";
export { createPlannerService, packVersionMessage } from "./planner-service.ts";
