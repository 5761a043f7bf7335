import type { Queryable } from "@packrun/db";

/** What an expression sees as `steps.<id>`: the step's outputs and its state. */
export type StepBindings = Record<string, { outputs: Record<string, unknown>; status: string }>;

/**
 * The `steps` binding of a run for expressions (`when`, run-time parameters, map items,
 * policies, outputs): every step, or only `ids` when given (what an expression references).
 */
export async function loadStepBindings(
  db: Queryable,
  runId: string,
  ids?: readonly string[],
): Promise<StepBindings> {
  if (ids !== undefined && ids.length === 0) return {};
  const rows = (
    await db.query<{ step_id: string; state: string; outputs: Record<string, unknown> }>(
      ids === undefined
        ? "SELECT step_id, state, outputs FROM steps WHERE run_id = $1"
        : "SELECT step_id, state, outputs FROM steps WHERE run_id = $1 AND step_id = ANY($2)",
      ids === undefined ? [runId] : [runId, ids],
    )
  ).rows;
  return Object.fromEntries(
    rows.map((row) => [row.step_id, { outputs: row.outputs, status: row.state }]),
  );
}

/** Ids of the steps the references of an expression read (`steps.<id>...`). */
export function referencedStepIds(
  references: readonly { root: string; path: readonly string[] }[],
): string[] {
  return [
    ...new Set(
      references
        .filter((ref) => ref.root === "steps" && ref.path[0] !== undefined)
        .map((ref) => ref.path[0] as string),
    ),
  ];
}
