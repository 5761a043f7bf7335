import type { Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { type RunRow, runColumns, type StepRow } from "../store/run-rows.ts";

/** A run with its steps, attempts and gate decisions, as reads return it. */
export interface RunView {
  run: RunRow;
  /** Approval requirements from the plan. */
  approvals: { id: string; required: number; grants: string[] }[];
  steps: StepRow[];
  attempts: AttemptRow[];
  decisions: DecisionRow[];
}

export interface AttemptRow {
  run_id: string;
  step_id: string;
  attempt: number;
  state: string;
  worker_id: string;
  started_at: Date;
  finished_at: Date | null;
  exit_code: number | null;
  reason: string;
  cpu_micros: number | null;
  peak_memory_bytes: number | null;
}

export interface DecisionRow {
  step_id: string;
  approver: string;
  approved: boolean;
  comment: string;
  decided_at: Date;
}

/** Timestamp columns of the child rows a run view reads as JSON. */
const stepTimestamps = [
  "ready_at",
  "next_attempt_at",
  "lease_expires_at",
  "started_at",
  "finished_at",
  "expires_at",
] as const;
const attemptTimestamps = ["started_at", "finished_at"] as const;
const decisionTimestamps = ["decided_at"] as const;

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Throws RUN_NOT_FOUND unless `runId` is a UUID: anything else names no run, and must not reach
 * a uuid column (PostgreSQL would answer with a syntax error).
 */
export function requireRunId(runId: string): void {
  if (!uuid.test(runId)) throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
}

/**
 * Rows read as JSON (`to_jsonb`), typed as the driver would type them: timestamps become Dates
 * again (bigints are JSON numbers already, as the driver's int8 parser makes them).
 */
function rowsFromJson<Row>(
  rows: readonly Record<string, unknown>[],
  timestamps: readonly string[],
): Row[] {
  return rows.map((row) => {
    const typed: Record<string, unknown> = { ...row };
    for (const column of timestamps) {
      const value = row[column];
      if (typeof value === "string") typed[column] = new Date(value);
    }
    return typed as Row;
  });
}

/** The run view in one statement: the run's columns and its child rows as JSON arrays. */
const runViewStatement = `
SELECT ${runColumns}, (plan_json::jsonb)->'approvals' AS approvals,
       coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.parent_id NULLS FIRST, s.position)
                   FROM steps s WHERE s.run_id = r.id), '[]') AS steps_json,
       coalesce((SELECT jsonb_agg(to_jsonb(a) ORDER BY a.step_id, a.attempt)
                   FROM step_attempts a WHERE a.run_id = r.id), '[]') AS attempts_json,
       coalesce((SELECT jsonb_agg(to_jsonb(d) ORDER BY d.decided_at)
                   FROM gate_decisions d WHERE d.run_id = r.id), '[]') AS decisions_json
  FROM runs r WHERE id = $1 AND tenant = $2`;

/**
 * Reads a run with its steps, attempts and decisions through `tx`, in one statement (so in
 * one snapshot: read separately, a step could show its retry pending while its failed attempt
 * still looked unfinished). The child rows travel as JSON; {@link rowsFromJson} restores
 * their timestamps. Throws RUN_NOT_FOUND for an unknown run or another tenant's.
 */
export async function readRunView(tx: Queryable, tenant: string, runId: string): Promise<RunView> {
  const row = (
    await tx.query<
      RunRow & {
        approvals: RunView["approvals"];
        steps_json: Record<string, unknown>[];
        attempts_json: Record<string, unknown>[];
        decisions_json: Record<string, unknown>[];
      }
    >(runViewStatement, [runId, tenant])
  ).rows[0];
  if (row === undefined) throw new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);
  const { approvals, steps_json, attempts_json, decisions_json, ...run } = row;
  return {
    run,
    approvals,
    steps: rowsFromJson<StepRow>(steps_json, stepTimestamps),
    attempts: rowsFromJson<AttemptRow>(attempts_json, attemptTimestamps),
    decisions: rowsFromJson<DecisionRow>(decisions_json, decisionTimestamps),
  };
}
