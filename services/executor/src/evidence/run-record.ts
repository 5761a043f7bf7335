import type { JsonObject } from "@bufbuild/protobuf";
import {
  parseRunRecord,
  type RunRecord,
  runStatusSchema,
  stepStatusSchema,
} from "@packrun/attestation";
import type { Queryable } from "@packrun/db";
import type { Plan } from "@packrun/planning";
import type { RunRow, StepRow } from "../store/run-rows.ts";
import { runColumns } from "../store/run-rows.ts";

/** A JSON value as the record holds it; jsonb columns give nothing else. */
type Json = RunRecord["inputs"][string];

const iso = (value: Date | null) => (value === null ? null : value.toISOString());
const clip = (text: string) => (text.length > 2000 ? `${text.slice(0, 1997)}...` : text);
/**
 * The run record FinalizeRun expects (docs/evidence.md, schema `runRecordSchema` of
 * @packrun/attestation): everything the attestation binds that only the executor knows. Secret
 * values are not in it: only their names.
 * @throws Error when the run is unknown or not finished (only finished runs are finalised)
 */
export async function buildRunRecord(
  db: Queryable,
  runId: string,
  executorId: string,
): Promise<{ tenant: string; record: RunRecord; planJson: string; packSource: string }> {
  const run = (
    await db.query<
      RunRow & {
        plan_json: string;
        manifest: string;
        rerun_of: string | null;
        rerun_mode: "rerun" | "resume" | null;
      }
    >(`SELECT ${runColumns}, plan_json, manifest, rerun_of, rerun_mode FROM runs WHERE id = $1`, [
      runId,
    ])
  ).rows[0];
  if (run === undefined) throw new Error(`run ${runId} not found`);
  const steps = (
    await db.query<StepRow>(
      "SELECT * FROM steps WHERE run_id = $1 ORDER BY parent_id NULLS FIRST, position, step_id",
      [runId],
    )
  ).rows;
  const decisions = (
    await db.query<{
      step_id: string;
      approver: string;
      approved: boolean;
      comment: string;
      decided_at: Date;
    }>("SELECT * FROM gate_decisions WHERE run_id = $1 ORDER BY decided_at, approver", [runId])
  ).rows;
  const redriven = (
    await db.query<{ id: string; step_id: string; attempt: number }>(
      "SELECT id, step_id, attempt FROM dead_letters WHERE retry_run_id = $1 ORDER BY step_id, attempt",
      [runId],
    )
  ).rows;
  const images = (
    await db.query<{ step_id: string; image_reference: string; image_digest: string }>(
      `SELECT DISTINCT step_id, image_reference, image_digest FROM step_attempts
        WHERE run_id = $1 AND image_digest IS NOT NULL
        ORDER BY step_id, image_reference, image_digest`,
      [runId],
    )
  ).rows;
  const plan = JSON.parse(run.plan_json) as Plan;
  const byId = new Map(steps.map((step) => [step.step_id, step]));
  const status = runStatusSchema.safeParse(run.state);
  if (!status.success) throw new Error(`run ${runId} is ${run.state}, not finished`);
  const record: RunRecord = {
    runId: run.id,
    status: status.data,
    pack: { name: run.pack_name, version: run.pack_version, digest: run.pack_digest },
    planHash: run.plan_hash,
    inputs: run.inputs as Record<string, Json>,
    secrets: run.secret_names,
    outputs: plan.outputs
      .filter((output) => output.type === "object" && Object.hasOwn(run.outputs, output.name))
      .map((output) => ({
        name: output.name,
        type: "object" as const,
        value: (run.outputs[output.name] ?? null) as Json,
      })),
    steps: steps.map((step) => ({
      id: step.step_id,
      // A step the run never reached (e.g. after an earlier failure) is recorded as pending.
      status: stepStatusSchema.safeParse(step.state).data ?? "pending",
      attempts: step.attempt,
      exitCode: step.exit_code,
      startedAt: iso(step.started_at),
      finishedAt: iso(step.finished_at),
      ...(step.reason === "" ? {} : { reason: clip(step.reason) }),
    })),
    approvals: decisions.map((decision) => {
      const gate = byId.get(decision.step_id)?.planned;
      return {
        approvalId: gate?.kind === "approval-gate" ? gate.gate.approvalId : decision.step_id,
        stepId: decision.step_id,
        approver: decision.approver,
        decision: decision.approved ? ("approved" as const) : ("rejected" as const),
        decidedAt: decision.decided_at.toISOString(),
        ...(decision.comment === "" ? {} : { comment: clip(decision.comment) }),
      };
    }),
    policyDecisions: steps
      .filter(
        (step) =>
          step.kind === "policy-gate" &&
          typeof step.outputs.decision === "string" &&
          step.finished_at !== null,
      )
      .map((step) => {
        const allowed = step.outputs.decision === "allow";
        return {
          stepId: step.step_id,
          policy: step.planned.kind === "policy-gate" ? step.planned.gate.policy : "",
          decision: allowed ? "allow" : step.outputs.failAction === "warn" ? "warn" : "deny",
          ...(typeof step.outputs.reason === "string" ? { reason: clip(step.outputs.reason) } : {}),
          decidedAt: (step.finished_at as Date).toISOString(),
        };
      }),
    ...(run.schedule_id === null || run.scheduled_for === null
      ? {}
      : { schedule: { id: run.schedule_id, dueAt: run.scheduled_for.toISOString() } }),
    startedAt: iso(run.started_at),
    finishedAt: (run.finished_at ?? new Date()).toISOString(),
    images: images.map((image) => ({
      stepId: image.step_id,
      reference: image.image_reference,
      digest: image.image_digest,
    })),
    executor: { id: executorId, version: "0.1.0" },
    ...(run.rerun_of === null || run.rerun_mode === null
      ? {}
      : {
          rerunOf: {
            runId: run.rerun_of,
            mode: run.rerun_mode,
            keptSteps: steps.filter((step) => step.kept_from !== null).map((step) => step.step_id),
            ...(redriven.length === 0
              ? {}
              : {
                  deadLetters: redriven.map((letter) => ({
                    id: letter.id,
                    stepId: letter.step_id,
                    attempt: letter.attempt,
                  })),
                }),
          },
        }),
  };
  return { tenant: run.tenant, record, planJson: run.plan_json, packSource: run.manifest };
}

/**
 * `record` as the protobuf Struct FinalizeRun carries, checked against the run record schema
 * first (a record the evidence service would refuse fails here, naming the field). The JSON
 * round trip only drops optional fields left undefined, which a Struct cannot hold.
 * @throws PackrunError RUN_RECORD_INVALID listing every problem with its path
 */
export function runRecordStruct(record: RunRecord): JsonObject {
  return JSON.parse(JSON.stringify(parseRunRecord(record))) as JsonObject;
}
