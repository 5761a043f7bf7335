import { scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { RerunMode } from "@packrun/proto/executor/v1";
import { runJson } from "../api-json.ts";
import { RerunBodySchema, RunIdParamsSchema, SubmitRunResponseSchema } from "../api-schemas.ts";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";
import { bearerSecurity, withProblems } from "../route-helpers.ts";

const actions = [
  {
    path: "/api/runs/:id/rerun",
    mode: RerunMode.RERUN,
    operationId: "rerunRun",
    summary: "Start a finished run again: a new run of the same plan hash and inputs",
    description:
      "Every step runs again. The plan's secrets must be supplied again; the original run's are never reused. The new run names the original in `rerunOf`, the original lists it in `reruns`, and the new run's attestation carries `rerunOf`. Refused for a run that has not finished (409 RUN_NOT_FINISHED), another tenant's run (404) and missing secrets (400 SECRET_MISSING).",
  },
  {
    path: "/api/runs/:id/resume",
    mode: RerunMode.RESUME,
    operationId: "resumeRun",
    summary: "Resume a failed or cancelled run from the steps that did not succeed",
    description:
      "A new run of the same plan hash and inputs that keeps the original's succeeded steps (their results and outputs) and runs the rest, as Argo's retry does. Linked like a rerun (`rerunOf.mode` is `resume`); its attestation lists the kept steps. Refused as a rerun is, and for a run that succeeded (409 RUN_NOT_RESUMABLE).",
  },
] as const;

/** Rerun and resume of finished runs. */
export function registerRerunRoutes(app: GatewayApp, { clients }: GatewayContext): void {
  for (const action of actions) {
    app.post(
      action.path,
      {
        config: { scope: scopes.run },
        schema: {
          tags: ["runs"],
          operationId: action.operationId,
          summary: action.summary,
          description: action.description,
          security: bearerSecurity(scopes.run),
          params: RunIdParamsSchema,
          body: RerunBodySchema,
          response: withProblems({ 201: SubmitRunResponseSchema }),
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const response = await clients.executor.rerunRun({
          tenant: principal.tenant,
          runId: request.params.id,
          mode: action.mode,
          secrets: request.body?.secrets ?? {},
          submittedBy: principal.subject,
        });
        if (response.run === undefined)
          throw new PackrunError("INTERNAL", "executor returned no run");
        const run = runJson(response.run);
        request.log.info(
          { runId: run.id, rerunOf: request.params.id, mode: run.rerunOf?.mode },
          "run started again",
        );
        return reply
          .code(201)
          .header("location", `/api/runs/${run.id}`)
          .send({ run, created: true });
      },
    );
  }
}
