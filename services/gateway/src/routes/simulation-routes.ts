import type { JsonObject } from "@bufbuild/protobuf";
import { scopes } from "@packrun/auth";
import { simulationJson } from "../api-json.ts";
import { SimulateBodySchema, SimulateResponseSchema } from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { assertValueDepth, bearerSecurity, packSourceOf, withProblems } from "../route-helpers.ts";

/** Paths the simulation endpoint answers at: its own and the Task Runner compatible one. */
export const simulationPaths = ["/api/simulations", "/v1/task-runner/simulations"] as const;

// operationIds are unique per document: the compatible path gets its own.
const operationIds: Record<(typeof simulationPaths)[number], string> = {
  "/api/simulations": "simulatePack",
  "/v1/task-runner/simulations": "simulatePackTaskRunner",
};

/** Simulation: what a run would do, without running anything. */
export function registerSimulationRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  for (const path of simulationPaths) {
    app.post(
      path,
      {
        config: { scope: scopes.read },
        schema: {
          tags: ["simulations"],
          operationId: operationIds[path],
          summary: "Simulate a pack: the plan hash and every step's expected status",
          security: bearerSecurity(scopes.read),
          body: SimulateBodySchema,
          response: withProblems({ 200: SimulateResponseSchema }),
        },
      },
      async (request) => {
        const body = request.body;
        assertValueDepth(body.inputs, "body/inputs");
        const response = await clients.planner.simulatePack({
          tenant: principalOf(request).tenant,
          pack: packSourceOf(body),
          inputs: (body.inputs ?? {}) as JsonObject,
          suppliedSecretNames: body.secretNames ?? [],
        });
        return simulationJson(response);
      },
    );
  }
}
