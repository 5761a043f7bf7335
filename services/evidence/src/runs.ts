import type { Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";

/** A run's row in `evidence.runs`. */
export interface RunState {
  runId: string;
  tenant: string;
  lastSequence: number;
  /** Sequence of the terminal event, or null while the run is not finished. */
  terminalSequence: number | null;
}

interface RunRow {
  run_id: string;
  tenant: string;
  last_sequence: number;
  terminal_sequence: number | null;
}

const toState = (row: RunRow): RunState => ({
  runId: row.run_id,
  tenant: row.tenant,
  lastSequence: row.last_sequence,
  terminalSequence: row.terminal_sequence,
});

/**
 * The error for a run that is absent or another tenant's: one message for both, so a caller
 * learns nothing about other tenants.
 */
export const runNotFound = (runId: string) =>
  new PackrunError("RUN_NOT_FOUND", `run ${runId} not found`);

/** Inside a transaction: locks an existing run of `tenant` until commit. */
export async function lockRun(tx: Queryable, tenant: string, runId: string): Promise<RunState> {
  const { rows } = await tx.query<RunRow>(
    "SELECT run_id, tenant, last_sequence, terminal_sequence FROM evidence.runs WHERE run_id = $1 FOR UPDATE",
    [runId],
  );
  const row = rows[0];
  if (row === undefined || row.tenant !== tenant) throw runNotFound(runId);
  return toState(row);
}

/**
 * Reads a run of `tenant` without locking.
 * @throws PackrunError RUN_NOT_FOUND when absent or another tenant's
 */
export async function findRun(db: Queryable, tenant: string, runId: string): Promise<RunState> {
  const { rows } = await db.query<RunRow>(
    "SELECT run_id, tenant, last_sequence, terminal_sequence FROM evidence.runs WHERE run_id = $1",
    [runId],
  );
  const row = rows[0];
  if (row === undefined || row.tenant !== tenant) throw runNotFound(runId);
  return toState(row);
}

/** Creates the run if needed (outside any caller transaction) and checks its tenant. */
export async function ensureRun(db: Queryable, tenant: string, runId: string): Promise<RunState> {
  await db.query(
    "INSERT INTO evidence.runs (run_id, tenant) VALUES ($1, $2) ON CONFLICT (run_id) DO NOTHING",
    [runId, tenant],
  );
  return findRun(db, tenant, runId);
}
