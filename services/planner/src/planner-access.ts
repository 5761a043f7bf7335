import { scopes } from "@packrun/auth";
import { PlannerService } from "@packrun/proto/planner/v1";
import type { RpcAccessPolicy, RpcAccessRule } from "@packrun/rpc-server";

// The gateway serves the registry and simulation to REST clients; the executor plans runs.
const read: RpcAccessRule = { services: ["gateway", "executor"], scope: scopes.read };

/**
 * Who may call the planner: the gateway and the executor by certificate, and bearer tokens of
 * the organisation's internal callers (read methods with `packs.read`, publishing with
 * `packs.write`), always within the token's tenant.
 */
export const plannerAccessPolicy: RpcAccessPolicy = {
  [PlannerService.typeName]: {
    ValidateManifest: read,
    PlanPack: read,
    SimulatePack: read,
    RegisterPack: { services: ["gateway"], scope: scopes.write },
    GetPackVersion: read,
    ListPacks: read,
    ListPackVersions: read,
  },
};
