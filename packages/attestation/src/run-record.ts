import { runStates, stepStates } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";
import { z } from "zod";

/** `sha256:` + 64 lowercase hex digits. */
export const sha256DigestSchema = z
  .string()
  .regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 lowercase hex digits>");

/** An RFC 3339 UTC timestamp ending in Z, e.g. 2026-01-31T12:00:00.000Z. */
export const utcTimestampSchema = z.iso.datetime({ offset: false });

const name = z.string().min(1).max(200);

/** Final status of a run, as its terminal event says. */
export const runStatusSchema = z
  .enum(runStates)
  .exclude(["queued", "running", "awaiting-approval"]);

/**
 * Final status of a step: a terminal state, or pending (never reached, e.g. after an earlier
 * failure). The names are @packrun/contract's.
 */
export const stepStatusSchema = z.enum(stepStates).exclude(["running", "awaiting-approval"]);

const stepSchema = z.strictObject({
  id: z.string().min(1).max(500),
  status: stepStatusSchema,
  /** Attempts started (0 when never started). */
  attempts: z.int().min(0).max(1000),
  /** Exit code of the last attempt; null when no process exited normally. */
  exitCode: z.int().nullable(),
  startedAt: utcTimestampSchema.nullable(),
  finishedAt: utcTimestampSchema.nullable(),
  reason: z.string().max(2000).optional(),
});

const approvalSchema = z.strictObject({
  /** Approval id declared in spec.approvals. */
  approvalId: name,
  /** Gate step that waited for it. */
  stepId: z.string().min(1).max(500).optional(),
  approver: z.string().min(1).max(500),
  decision: z.enum(["approved", "rejected"]),
  decidedAt: utcTimestampSchema,
  comment: z.string().max(2000).optional(),
});

const policyDecisionSchema = z.strictObject({
  stepId: z.string().min(1).max(500),
  policy: name,
  decision: z.enum(["allow", "deny", "warn"]),
  reason: z.string().max(2000).optional(),
  decidedAt: utcTimestampSchema,
});

const outputSchema = z
  .strictObject({
    name,
    type: z.enum(["file", "object"]),
    /** Required for files; for objects, optional and checked against the value. */
    digest: sha256DigestSchema.optional(),
    /** Object outputs only: the JSON value. */
    value: z.json().optional(),
    /** File outputs: the path the step wrote. */
    path: z.string().max(4096).optional(),
  })
  .superRefine((output, context) => {
    if (output.type === "file" && output.digest === undefined) {
      context.addIssue({ code: "custom", path: ["digest"], message: "file outputs need a digest" });
    }
    if (output.type === "file" && output.value !== undefined) {
      context.addIssue({ code: "custom", path: ["value"], message: "file outputs carry no value" });
    }
    if (output.type === "object" && output.value === undefined) {
      context.addIssue({ code: "custom", path: ["value"], message: "object outputs need a value" });
    }
  });

/** The earlier run a rerun or resume was made from; see docs/evidence.md. */
export const rerunOfSchema = z.strictObject({
  runId: z.string().min(1).max(200),
  /** "rerun": every step ran again; "resume": `keptSteps` were copied from `runId`. */
  mode: z.enum(["rerun", "resume"]),
  /** Steps copied from the earlier run with their results (not run again); resume only. */
  keptSteps: z.array(z.string().min(1).max(500)).max(100_000),
  /** Set when the run re-drove dead letters of `runId`: the dead-lettered steps it ran again. */
  deadLetters: z
    .array(
      z.strictObject({
        id: z.string().min(1).max(200),
        stepId: z.string().min(1).max(500),
        attempt: z.int().min(0),
      }),
    )
    .max(100_000)
    .optional(),
});

/**
 * What the executor sends with FinalizeRun (`run_record`): everything the attestation binds that
 * only the executor knows. Unknown fields are rejected so nothing (a secret value, say) slips
 * into a signed statement unnoticed. Documented in docs/evidence.md.
 */
export const runRecordSchema = z.strictObject({
  runId: z.string().min(1).max(200),
  status: runStatusSchema,
  pack: z.strictObject({
    name,
    version: z.string().min(1).max(100),
    /** Digest of the manifest bytes. */
    digest: sha256DigestSchema,
  }),
  planHash: sha256DigestSchema,
  /** Resolved, non-secret input values by name (the plan's `inputs`). */
  inputs: z.record(z.string().min(1).max(200), z.json()),
  /** Names of the secrets supplied; values never leave the executor. */
  secrets: z.array(name).max(1000),
  outputs: z.array(outputSchema).max(10_000),
  steps: z.array(stepSchema).max(100_000),
  approvals: z.array(approvalSchema).max(10_000),
  policyDecisions: z.array(policyDecisionSchema).max(10_000),
  /** The schedule and due time that made the run; absent for runs submitted by hand. */
  schedule: z
    .strictObject({
      id: z.string().min(1).max(200),
      dueAt: utcTimestampSchema,
    })
    .optional(),
  /** Null when the run never started (e.g. cancelled while queued). */
  startedAt: utcTimestampSchema.nullable(),
  finishedAt: utcTimestampSchema,
  /**
   * Container images the run's attempts ran, by the digest the container engine resolved each
   * reference to (one entry per step, reference and digest). Absent from older executors.
   */
  images: z
    .array(
      z.strictObject({
        stepId: z.string().min(1).max(500),
        reference: z.string().min(1).max(1000),
        digest: sha256DigestSchema,
      }),
    )
    .max(100_000)
    .optional(),
  executor: z.strictObject({
    /** Stable identity of the executor deployment, e.g. "executor@cluster-a". */
    id: z.string().min(1).max(500),
    version: z.string().max(100).optional(),
  }),
  /** Set when the run was made from an earlier run (`packrun rerun` / `packrun resume`). */
  rerunOf: rerunOfSchema.optional(),
});

/** A validated run record. */
export type RunRecord = z.infer<typeof runRecordSchema>;

/**
 * Validates a run record.
 * @throws PackrunError RUN_RECORD_INVALID listing every problem with its path
 */
export function parseRunRecord(value: unknown): RunRecord {
  const result = runRecordSchema.safeParse(value);
  if (result.success) {
    const names = new Set<string>();
    for (const output of result.data.outputs) {
      if (names.has(output.name)) {
        throw new PackrunError("RUN_RECORD_INVALID", `run_record: duplicate output ${output.name}`);
      }
      names.add(output.name);
    }
    const steps = new Set<string>();
    for (const step of result.data.steps) {
      if (steps.has(step.id)) {
        throw new PackrunError("RUN_RECORD_INVALID", `run_record: duplicate step ${step.id}`);
      }
      steps.add(step.id);
    }
    return result.data;
  }
  const problems = result.error.issues.map(
    (issue) => `run_record.${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
  );
  throw new PackrunError("RUN_RECORD_INVALID", `invalid run_record:\n  ${problems.join("\n  ")}`, {
    details: { issues: problems },
  });
}
