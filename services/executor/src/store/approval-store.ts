import type { Queryable } from "@packrun/db";
import type { ApprovalGateFacts } from "../run/approval-decision.ts";

/**
 * What an approval is decided from, in one statement under the run's lock: the run's approval
 * gates (step id, approval id, state, the plan's quorum and grants for it, the decisions so far,
 * awaiting ones first within plan order) and whether the credential's token id was spent.
 */
const readApprovalFactsSql = `
SELECT EXISTS (SELECT 1 FROM approval_tokens t WHERE t.tenant = $2 AND t.token_id = $3) AS token_spent,
       coalesce((
         SELECT jsonb_agg(jsonb_build_object(
                  'stepId', s.step_id,
                  'approvalId', s.planned->'gate'->>'approvalId',
                  'state', s.state,
                  'required', coalesce((a.spec->>'required')::int, 1),
                  'grants', coalesce(a.spec->'grants', '[]'::jsonb),
                  'decisions', coalesce((
                    SELECT jsonb_agg(jsonb_build_object('approver', d.approver, 'approved', d.approved)
                                     ORDER BY d.decided_at)
                      FROM gate_decisions d
                     WHERE d.run_id = s.run_id AND d.step_id = s.step_id), '[]'::jsonb))
                ORDER BY s.parent_id NULLS FIRST, s.position)
           FROM steps s
           LEFT JOIN LATERAL (
             SELECT spec FROM jsonb_array_elements((r.plan_json::jsonb)->'approvals') AS spec
              WHERE spec->>'id' = s.planned->'gate'->>'approvalId' LIMIT 1) a ON true
          WHERE s.run_id = r.id AND s.kind = 'approval-gate'), '[]'::jsonb) AS gates
  FROM runs r
 WHERE r.id = $1`;

/** Reads the run's approval gates and whether `tokenId` was spent in `tenant`. */
export async function readApprovalFacts(
  tx: Queryable,
  runId: string,
  tenant: string,
  tokenId: string,
): Promise<{ gates: ApprovalGateFacts[]; tokenSpent: boolean }> {
  const row = (
    await tx.query<{ token_spent: boolean; gates: ApprovalGateFacts[] }>(readApprovalFactsSql, [
      runId,
      tenant,
      tokenId,
    ])
  ).rows[0];
  return { gates: row?.gates ?? [], tokenSpent: row?.token_spent ?? false };
}

/**
 * Spends an approval token: recorded with the decision in its transaction, so a token is spent
 * exactly when a decision is made with it. False when it was spent already (a concurrent use
 * elsewhere in the tenant won).
 */
export async function spendApprovalToken(
  tx: Queryable,
  token: { tenant: string; tokenId: string; runId: string; stepId: string; approver: string },
): Promise<boolean> {
  const spent = await tx.query(
    `INSERT INTO approval_tokens (tenant, token_id, run_id, step_id, approver)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
    [token.tenant, token.tokenId, token.runId, token.stepId, token.approver],
  );
  return spent.rowCount !== 0;
}

/** Records one approver's decision at a gate. */
export async function insertGateDecision(
  tx: Queryable,
  decision: { runId: string; stepId: string; approver: string; approved: boolean; comment: string },
): Promise<void> {
  await tx.query(
    "INSERT INTO gate_decisions (run_id, step_id, approver, approved, comment) VALUES ($1, $2, $3, $4, $5)",
    [decision.runId, decision.stepId, decision.approver, decision.approved, decision.comment],
  );
}
