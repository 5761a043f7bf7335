import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import {
  DeadLetterIdParamsSchema,
  DeadLetterRetrySchema,
  ListDeadLettersQuerySchema,
  ListDeadLettersResponseSchema,
  RetryAllDeadLettersResponseSchema,
  RetryDeadLetterBodySchema,
} from "../api-schemas.ts";
import { deadLetterJson } from "../dead-letter-json.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";

const redriveNote =
  "A re-drive resumes the dead letter's run as a new run (same plan hash and inputs) that keeps the steps that succeeded and runs the dead-lettered steps again; the new run's `run.rerun` event and attestation (`rerunOf.deadLetters`) record it. The pack's secrets must be supplied again.";

/** Dead letters: list the tenant's, re-drive one or all. */
export function registerDeadLetterRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  app.get(
    "/api/dead-letters",
    {
      config: { scope: scopes.read },
      schema: {
        tags: ["dead-letters"],
        operationId: "listDeadLetters",
        summary: "The tenant's dead letters (steps that failed permanently), newest first",
        description:
          "Open dead letters, with the reason and the last attempt's result (exit code, error, times); `includeRetried=true` lists re-driven ones too.",
        security: bearerSecurity(scopes.read),
        querystring: ListDeadLettersQuerySchema,
        response: withProblems({ 200: ListDeadLettersResponseSchema }),
      },
    },
    async (request) => {
      const query = request.query;
      const response = await clients.executor.listDeadLetters({
        tenant: principalOf(request).tenant,
        includeRetried: query.includeRetried ?? false,
        runId: query.runId ?? "",
        pageSize: query.pageSize ?? 50,
        pageToken: query.pageToken ?? "",
      });
      return {
        deadLetters: response.deadLetters.map(deadLetterJson),
        ...(response.nextPageToken === "" ? {} : { nextPageToken: response.nextPageToken }),
      };
    },
  );

  app.post(
    "/api/dead-letters/:id/retry",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["dead-letters"],
        operationId: "retryDeadLetter",
        summary: "Re-drive one dead letter",
        description: `${redriveNote} Refused: unknown or another tenant's dead letter (404 DEAD_LETTER_NOT_FOUND), one already re-driven (409 DEAD_LETTER_RETRIED), a run still running (409 RUN_NOT_FINISHED), missing secrets (400 SECRET_MISSING).`,
        security: bearerSecurity(scopes.run),
        params: DeadLetterIdParamsSchema,
        body: RetryDeadLetterBodySchema,
        response: withProblems({ 201: DeadLetterRetrySchema }),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const response = await clients.executor.retryDeadLetters({
        tenant: principal.tenant,
        ids: [request.params.id],
        secrets: request.body?.secrets ?? {},
        requestedBy: principal.subject,
      });
      const retried = response.retried[0];
      if (retried === undefined)
        throw new PackrunError("INTERNAL", "the executor re-drove nothing and refused nothing");
      request.log.info({ ...retried }, "dead letter re-driven");
      return reply.code(201).header("location", `/api/runs/${retried.retryRunId}`).send({
        deadLetterId: retried.deadLetterId,
        runId: retried.runId,
        retryRunId: retried.retryRunId,
      });
    },
  );

  app.post(
    "/api/dead-letters/retry",
    {
      config: { scope: scopes.run },
      schema: {
        tags: ["dead-letters"],
        operationId: "retryAllDeadLetters",
        summary: "Re-drive every open dead letter of the tenant",
        description: `${redriveNote} The dead letters of one run are re-driven together by one new run. Refusals (a run still running, missing secrets, …) are listed per dead letter; the others are re-driven.`,
        security: bearerSecurity(scopes.run),
        body: RetryDeadLetterBodySchema,
        response: withProblems({ 200: RetryAllDeadLettersResponseSchema }),
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const response = await clients.executor.retryDeadLetters({
        tenant: principal.tenant,
        all: true,
        secrets: request.body?.secrets ?? {},
        requestedBy: principal.subject,
      });
      request.log.info(
        { retried: response.retried.length, refused: response.refused.length },
        "dead letters re-driven",
      );
      return {
        retried: response.retried.map((each) => ({
          deadLetterId: each.deadLetterId,
          runId: each.runId,
          retryRunId: each.retryRunId,
        })),
        refused: response.refused.map((each) => ({
          deadLetterId: each.deadLetterId,
          code: each.code,
          message: each.message,
        })),
      };
    },
  );
}
