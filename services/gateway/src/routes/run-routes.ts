import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { runJson, runStateValue } from "../api-json.ts";
import {
  CancelBodySchema,
  ListRunsQuerySchema,
  ListRunsResponseSchema,
  RunIdParamsSchema,
  RunSchema,
  SubmitRunBodySchema,
  SubmitRunResponseSchema,
} from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import {
  assertValueDepth,
  bearerSecurity,
  packSourceOf,
  requireTime,
  withProblems,
} from "../route-helpers.ts";

/** Run submission, listing, reading and cancellation. */
export function registerRunRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  app.post(
    "/api/runs",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["runs"],
        operationId: "submitRun",
        summary: "Submit a run of an inline manifest or of a registered pack version",
        security: bearerSecurity(scopes.run),
        body: SubmitRunBodySchema,
        response: withProblems({ 200: SubmitRunResponseSchema, 201: SubmitRunResponseSchema }),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      assertValueDepth(body.inputs, "body/inputs");
      const response = await clients.executor.submitRun({
        tenant: principal.tenant,
        pack: packSourceOf(body),
        inputs: (body.inputs ?? {}) as JsonObject,
        secrets: body.secrets ?? {},
        priority: body.priority ?? 0,
        idempotencyKey: body.idempotencyKey ?? "",
        submittedBy: principal.subject,
        labels: body.labels ?? {},
        ...(body.notBefore === undefined
          ? {}
          : { notBefore: timestampFromDate(requireTime(body.notBefore, "body/notBefore")) }),
        timeoutSeconds: body.timeoutSeconds ?? 0,
      });
      if (response.run === undefined)
        throw new PackrunError("INTERNAL", "executor returned no run");
      const run = runJson(response.run);
      request.log.info({ runId: run.id, created: response.created }, "run submitted");
      return reply
        .code(response.created ? 201 : 200)
        .header("location", `/api/runs/${run.id}`)
        .send({ run, created: response.created });
    },
  );

  app.get(
    "/api/runs",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["runs"],
        operationId: "listRuns",
        summary: "List the tenant's runs, newest first",
        security: bearerSecurity(scopes.read),
        querystring: ListRunsQuerySchema,
        response: withProblems({ 200: ListRunsResponseSchema }),
      },
    },
    async (request) => {
      const query = request.query;
      const response = await clients.executor.listRuns({
        tenant: principalOf(request).tenant,
        states: (query.state ?? []).map(runStateValue),
        packName: query.pack ?? "",
        pageSize: query.pageSize ?? 50,
        pageToken: query.pageToken ?? "",
      });
      return {
        runs: response.runs.map(runJson),
        ...(response.nextPageToken === "" ? {} : { nextPageToken: response.nextPageToken }),
      };
    },
  );

  app.get(
    "/api/runs/:id",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["runs"],
        operationId: "getRun",
        summary: "A run with its step graph, attempts and gates",
        security: bearerSecurity(scopes.read),
        params: RunIdParamsSchema,
        response: withProblems({ 200: RunSchema }),
      },
    },
    async (request) => {
      const response = await clients.executor.getRun({
        tenant: principalOf(request).tenant,
        runId: request.params.id,
      });
      if (response.run === undefined)
        throw new PackrunError("RUN_NOT_FOUND", `run ${request.params.id} not found`);
      return runJson(response.run);
    },
  );

  app.post(
    "/api/runs/:id/cancel",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["runs"],
        operationId: "cancelRun",
        summary: "Cancel a run: running steps are stopped, pending ones never start",
        security: bearerSecurity(scopes.run),
        params: RunIdParamsSchema,
        body: CancelBodySchema,
        response: withProblems({ 200: RunSchema }),
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const response = await clients.executor.cancelRun({
        tenant: principal.tenant,
        runId: request.params.id,
        reason: request.body?.reason ?? "",
        requestedBy: principal.subject,
      });
      if (response.run === undefined)
        throw new PackrunError("RUN_NOT_FOUND", `run ${request.params.id} not found`);
      request.log.info({ runId: request.params.id }, "run cancelled");
      return runJson(response.run);
    },
  );
}
