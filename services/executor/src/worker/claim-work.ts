import type { Queryable } from "@packrun/db";
import { type ClaimedStep, claimStep } from "../store/claim-step.ts";
import type { WorkItem } from "./work-queue.ts";
import type { WorkerContext } from "./worker-context.ts";

/** What a claim attempt came to: the step, nothing to do, or try again after a delay. */
export type ClaimAttempt =
  | { kind: "claimed"; claimed: ClaimedStep }
  | { kind: "stale" }
  | { kind: "later"; delayMs: number };

/**
 * Claims a queue item's step for this worker (fencing token + lease), first checking the
 * tenant's running-step limit under the tenant's advisory lock when one is configured.
 * `needsPlanText` asks the claim to return the stored plan (the worker has none cached).
 */
export async function claimWork(
  worker: WorkerContext,
  item: WorkItem,
  needsPlanText: boolean,
): Promise<ClaimAttempt> {
  const { database, tenantConcurrency } = worker.options;
  if (tenantConcurrency === 0) return claimIn(worker, database, item, needsPlanText);
  return database.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`packrun.tenant.${item.tenant}`]);
    const running =
      (
        await tx.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM steps WHERE tenant = $1 AND state = 'running' AND lease_owner IS NOT NULL",
          [item.tenant],
        )
      ).rows[0]?.n ?? 0;
    if (running >= tenantConcurrency) return { kind: "later", delayMs: 200 };
    return claimIn(worker, tx, item, needsPlanText);
  });
}

async function claimIn(
  worker: WorkerContext,
  db: Queryable,
  item: WorkItem,
  needsPlanText: boolean,
): Promise<ClaimAttempt> {
  const claimed = await claimStep(db, item, worker.id, worker.options.leaseMs, needsPlanText);
  if (claimed !== undefined) return { kind: "claimed", claimed };
  const due = (
    await db.query<{ wait_ms: number }>(
      "SELECT greatest(0, extract(epoch FROM ready_at - now()) * 1000)::float8 AS wait_ms FROM steps WHERE run_id = $1 AND step_id = $2 AND state = 'pending' AND ready_at > now()",
      [item.runId, item.stepId],
    )
  ).rows[0];
  // Early (clocks differ between queue and database): wait until the database says so.
  return due === undefined
    ? { kind: "stale" }
    : { kind: "later", delayMs: Math.ceil(due.wait_ms) + 5 };
}
