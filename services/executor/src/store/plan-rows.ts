import type { Queryable } from "@packrun/db";
import type { PlannedStep } from "@packrun/planning";

/** A step row to insert: the planned step without its children, flattened. */
interface NewStepRow {
  step_id: string;
  parent_id: string | null;
  position: number;
  kind: string;
  planned: PlannedStep;
  max_attempts: number;
  bindings: Record<string, unknown>;
}

function withoutChildren(step: PlannedStep): PlannedStep {
  if (step.kind === "parallel") return { ...step, parallel: { ...step.parallel, steps: [] } };
  if (step.kind === "map") return { ...step, map: { ...step.map, steps: [] } };
  return step;
}

/** Flattens planned steps (children after their parent) into rows. */
export function flattenPlannedSteps(
  steps: readonly PlannedStep[],
  bindings: Record<string, unknown> = {},
): NewStepRow[] {
  const rows: NewStepRow[] = [];
  const visit = (list: readonly PlannedStep[]) => {
    list.forEach((step, position) => {
      rows.push({
        step_id: step.id,
        parent_id: step.parentId,
        position,
        kind: step.kind,
        planned: withoutChildren(step),
        max_attempts: step.failure.maxAttempts,
        bindings,
      });
      if (step.kind === "parallel") visit(step.parallel.steps);
      if (step.kind === "map") visit(step.map.steps);
    });
  };
  visit(steps);
  return rows;
}

/** Most step rows one statement inserts. */
export const stepRowsPerStatement = 500;

/**
 * The INSERT of a batch of step rows: run id, tenant and the rows as a JSON array are the
 * parameters numbered `runParameter`, `tenantParameter` and `rowsParameter`.
 */
export function insertStepRowsSql(
  runParameter: number,
  tenantParameter: number,
  rowsParameter: number,
): string {
  return `INSERT INTO steps (run_id, tenant, step_id, parent_id, position, kind, planned, max_attempts, bindings)
       SELECT $${runParameter}, $${tenantParameter}, r.step_id, r.parent_id, r.position, r.kind, r.planned, r.max_attempts, r.bindings
         FROM jsonb_to_recordset($${rowsParameter}::jsonb) AS r(step_id text, parent_id text, position integer, kind text, planned jsonb, max_attempts integer, bindings jsonb)`;
}

/** Inserts step rows in batches (one statement per {@link stepRowsPerStatement} rows). */
export async function insertStepRows(
  tx: Queryable,
  run: { id: string; tenant: string },
  rows: readonly NewStepRow[],
): Promise<void> {
  for (let start = 0; start < rows.length; start += stepRowsPerStatement) {
    const batch = rows.slice(start, start + stepRowsPerStatement);
    await tx.query(insertStepRowsSql(1, 2, 3), [run.id, run.tenant, JSON.stringify(batch)]);
  }
}
