import type { Database, Transaction } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { ApprovalCredential } from "../run/approval-decision.ts";
import { approvalRefusedEvent } from "../run/approval-events.ts";
import { decideUnderLock } from "../run/approve-gate.ts";
import { RunScheduler } from "../run/scheduler.ts";
import { terminalRunStates } from "../run/state-machine.ts";
import type { ReadyWork } from "../store/run-rows.ts";
import { type RunView, readRunView, requireRunId } from "./run-view.ts";

/** An approval to decide: who vouches for it, and what it says. */
export interface ApprovalRequest {
  /** The tenant it was made in. */
  tenant: string;
  runId: string;
  credential: ApprovalCredential;
  /** The gate the caller named, if any (empty strings: none). */
  named: { gateStepId: string; approvalId: string };
  approve: boolean;
  comment: string;
  /**
   * Extra metadata of the decision's event, and of its refusal's (an offline approval's
   * verbatim response, for one).
   */
  evidence?: Record<string, string>;
}

/** An approval refused before it reached the executor's decision. */
export interface ApprovalRefusal {
  tenant: string;
  runId: string;
  /** May be empty when the caller did not know which approval was meant. */
  approvalId: string;
  approver: string;
  /** Stable error code of the refusal (APPROVAL_STALE, PERMISSION_DENIED, ...). */
  code: string;
  reason: string;
  /** The gate's step id when already known; otherwise looked up from `approvalId`. */
  gateStepId?: string;
  /** Extra metadata of the refusal event (an offline response, verbatim, for one). */
  evidence?: Record<string, string>;
}

/** What the approval glue works with. */
export interface ApprovalContext {
  database: Database;
  logger: Logger;
  /** Queues steps after the commit; never throws. */
  enqueue: (ready: readonly ReadyWork[]) => Promise<void>;
}

/** The gate a refusal is about: the named step if it is an approval gate of the run, else the approval's. */
async function refusedGateStep(
  tx: Transaction,
  refusal: ApprovalRefusal,
): Promise<string | undefined> {
  // A step id from the caller counts only if it is an approval gate of this run.
  const namedGate =
    refusal.gateStepId === undefined
      ? undefined
      : (
          await tx.query<{ step_id: string }>(
            "SELECT step_id FROM steps WHERE run_id = $1 AND kind = 'approval-gate' AND step_id = $2",
            [refusal.runId, refusal.gateStepId],
          )
        ).rows[0]?.step_id;
  if (namedGate !== undefined || refusal.approvalId === "") return namedGate;
  return (
    await tx.query<{ step_id: string }>(
      "SELECT step_id FROM steps WHERE run_id = $1 AND kind = 'approval-gate' AND planned->'gate'->>'approvalId' = $2 ORDER BY (state = 'awaiting-approval') DESC, position LIMIT 1",
      [refusal.runId, refusal.approvalId],
    )
  ).rows[0]?.step_id;
}

/**
 * Records a refused approval in the run's evidence trail (a `gate.approval_refused` event),
 * unless the run already ended (then it is only logged: the evidence log takes no event after
 * the terminal one). Throws RUN_NOT_FOUND for an unknown run or another tenant's.
 */
export async function recordApprovalRefusal(
  context: ApprovalContext,
  refusal: ApprovalRefusal,
): Promise<{ recorded: boolean }> {
  requireRunId(refusal.runId);
  const recorded = await context.database.transaction(async (tx) => {
    // The run's lock orders this event with the run's terminal event (recorded under it).
    const scheduler = await RunScheduler.lock(tx, refusal.runId, refusal.tenant);
    if (scheduler === undefined)
      throw new PackrunError("RUN_NOT_FOUND", `run ${refusal.runId} not found`);
    if (terminalRunStates.has(scheduler.run.state)) return false;
    const stepId = await refusedGateStep(tx, refusal);
    await scheduler.events([
      approvalRefusedEvent({
        runId: refusal.runId,
        approver: refusal.approver,
        approvalId: refusal.approvalId,
        code: refusal.code,
        reason: refusal.reason,
        stepId,
        evidence: refusal.evidence,
      }),
    ]);
    return true;
  });
  const fields = {
    runId: refusal.runId,
    tenant: refusal.tenant,
    approver: refusal.approver,
    approvalId: refusal.approvalId,
    code: refusal.code,
    reason: refusal.reason,
  };
  if (recorded) context.logger.warn(fields, "approval refused; recorded in the run's evidence");
  else context.logger.warn(fields, "approval refused for a run that already ended; not recorded");
  return { recorded };
}

/**
 * Decides an approval by the rules of run/approval-decision.ts, under the run's lock; a
 * refusal is recorded in the run's evidence (`gate.approval_refused`) and thrown.
 */
export async function decideApproval(
  context: ApprovalContext,
  request: ApprovalRequest,
): Promise<{ view: RunView; gateStepId: string; recorded: boolean }> {
  requireRunId(request.runId);
  const outcome = await context.database.transaction(async (tx) => {
    const scheduler = await RunScheduler.lock(tx, request.runId, request.tenant);
    if (scheduler === undefined)
      throw new PackrunError("RUN_NOT_FOUND", `run ${request.runId} not found`);
    const decision = await decideUnderLock(tx, scheduler, request);
    if (decision.kind === "refuse") {
      // Recorded under the lock that orders it with the run's terminal event; a run that
      // ended takes no more events, so its refusals are only logged.
      const recorded = !terminalRunStates.has(scheduler.run.state);
      if (recorded)
        await scheduler.events([
          approvalRefusedEvent({
            runId: request.runId,
            approver: decision.approver,
            approvalId: decision.approvalId,
            code: decision.code,
            reason: decision.reason,
            stepId: decision.gateStepId,
            evidence: request.evidence,
          }),
        ]);
      return { refused: decision, recorded };
    }
    return {
      gateStepId: decision.gate.stepId,
      recorded: decision.newApprover,
      ready: scheduler.ready,
    };
  });
  if ("refused" in outcome) {
    const { refused } = outcome;
    context.logger.warn(
      {
        runId: request.runId,
        tenant: request.tenant,
        approver: refused.approver,
        approvalId: refused.approvalId,
        code: refused.code,
        reason: refused.reason,
      },
      outcome.recorded
        ? "approval refused; recorded in the run's evidence"
        : "approval refused for a run that already ended; not recorded",
    );
    throw new PackrunError(refused.code, refused.reason);
  }
  await context.enqueue(outcome.ready);
  return {
    view: await readRunView(context.database, request.tenant, request.runId),
    gateStepId: outcome.gateStepId,
    recorded: outcome.recorded,
  };
}
