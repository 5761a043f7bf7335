import { HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";
import { Type } from "typebox";
import type { GatewayApp, GatewayContext } from "../gateway-context.ts";
import { type GatewayMetrics, renderRunStatistics } from "../gateway-metrics.ts";
import { mediaResponse, withProblems } from "../route-helpers.ts";

const readinessTimeoutMs = 2_000;

const ReadinessSchema = Type.Object({
  ready: Type.Boolean(),
  services: Type.Record(Type.String(), Type.String(), {
    description: "Each downstream service's grpc.health.v1 status, or the failure.",
  }),
});

/** Health, readiness, metrics and the OpenAPI document: public, unauthenticated. */
export function registerOperationsRoutes(
  app: GatewayApp,
  { clients, logger }: GatewayContext,
  metrics: GatewayMetrics,
): void {
  app.get(
    "/healthz",
    {
      schema: {
        tags: ["operations"],
        security: [],
        operationId: "getLiveness",
        summary: "Liveness: the gateway process answers",
        response: withProblems({ 200: Type.Object({ status: Type.Literal("ok") }) }),
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        tags: ["operations"],
        security: [],
        operationId: "getReadiness",
        summary: "Readiness: planner, executor and evidence all report SERVING",
        response: withProblems({ 200: ReadinessSchema, 503: ReadinessSchema }),
      },
    },
    async (_request, reply) => {
      const entries = await Promise.all(
        Object.entries(clients.health).map(async ([name, client]) => {
          try {
            const response = await client.check({}, { timeoutMs: readinessTimeoutMs });
            return [name, HealthCheckResponse_ServingStatus[response.status]] as const;
          } catch (error) {
            return [name, `unreachable: ${(error as Error).message}`] as const;
          }
        }),
      );
      const ready = entries.every(([, status]) => status === "SERVING");
      return reply.code(ready ? 200 : 503).send({ ready, services: Object.fromEntries(entries) });
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        tags: ["operations"],
        security: [],
        operationId: "getMetrics",
        summary:
          "Prometheus metrics: request latency, runs by state, queue depth, step durations, retries",
        response: withProblems({
          200: mediaResponse(
            "The Prometheus text exposition format",
            ["text/plain"],
            Type.String(),
          ),
        }),
      },
    },
    async (_request, reply) => {
      let runs = "";
      try {
        runs = renderRunStatistics(
          await clients.executor.getRunStatistics({}, { timeoutMs: readinessTimeoutMs }),
        );
      } catch (error) {
        // The gateway's own metrics are still worth serving when the executor is down.
        logger.warn({ err: error }, "run statistics unavailable for /metrics");
      }
      return reply
        .type(metrics.registry.contentType)
        .send(`${await metrics.registry.metrics()}${runs}`);
    },
  );

  app.get(
    "/.well-known/openapi",
    {
      schema: {
        tags: ["operations"],
        security: [],
        operationId: "getOpenApiDocument",
        summary: "This API's OpenAPI 3.1 document",
        response: withProblems({ 200: Type.Object({}, { additionalProperties: true }) }),
      },
    },
    async () => app.swagger(),
  );
}
