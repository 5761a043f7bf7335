import type { PlannedStep } from "@packrun/planning";
import type { RunState, StepState } from "../run/state-machine.ts";

/** A row of `runs` as the executor reads it (plan text excluded unless asked for). */
export interface RunRow {
  id: string;
  tenant: string;
  pack_name: string;
  pack_version: string;
  pack_digest: string;
  plan_hash: string;
  inputs: Record<string, unknown>;
  secret_names: string[];
  state: RunState;
  priority: number;
  reason: string;
  submitted_by: string;
  labels: Record<string, string>;
  outputs: Record<string, unknown>;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  finalized_at: Date | null;
  /** False when the plan declares no approvals: the run can never wait at a gate. */
  has_approvals: boolean;
  /** False when the plan declares no run outputs: finishing it need not read the plan. */
  has_outputs: boolean;
  /** A delayed run starts no earlier than this. */
  not_before: Date | null;
  /** Why a queued run has not started yet ('' when nothing holds it). */
  waiting_reason: string;
  /** Run deadline in seconds from the start (0 = none). */
  timeout_seconds: number;
  /** When the deadline passes; set when the run starts. */
  deadline_at: Date | null;
  /** The schedule and due time that made the run (null when submitted by hand). */
  schedule_id: string | null;
  scheduled_for: Date | null;
}

/** A row of `steps`. */
export interface StepRow {
  run_id: string;
  step_id: string;
  tenant: string;
  parent_id: string | null;
  position: number;
  kind: PlannedStep["kind"];
  state: StepState;
  planned: PlannedStep;
  bindings: Record<string, unknown>;
  attempt: number;
  max_attempts: number;
  failed_attempts: number;
  lost_attempts: number;
  ready_at: Date | null;
  next_attempt_at: Date | null;
  fence: number;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  exit_code: number | null;
  reason: string;
  outputs: Record<string, unknown>;
  started_at: Date | null;
  finished_at: Date | null;
  expires_at: Date | null;
  /** The run a resume copied this step from (it did not run again); null otherwise. */
  kept_from: string | null;
}

/** Columns of `runs` without the large plan and manifest texts. */
export const runColumns =
  "id, tenant, pack_name, pack_version, pack_digest, plan_hash, inputs, secret_names, state, priority, reason, submitted_by, labels, outputs, created_at, started_at, finished_at, finalized_at, has_approvals, has_outputs, not_before, waiting_reason, timeout_seconds, deadline_at, schedule_id, scheduled_for";

/** A step a worker may now claim, to be put on the work queue after the transaction commits. */
export interface ReadyWork {
  runId: string;
  stepId: string;
  tenant: string;
  priority: number;
  attempt: number;
  /** Milliseconds from now (database clock) until the step may be claimed. */
  delayMs: number;
}
