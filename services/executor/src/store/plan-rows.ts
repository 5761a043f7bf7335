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

/** Inserts step rows in batches (one statement per 500 rows). */
export async function insertStepRows(
  tx: Queryable,
  run: { id: string; tenant: string },
  rows: readonly NewStepRow[],
): Promise<void> {
  for (let start = 0; start < rows.length; start += 500) {
    const batch = rows.slice(start, start + 500);
    await tx.query(
      `INSERT INTO steps (run_id, tenant, step_id, parent_id, position, kind, planned, max_attempts, bindings)
       SELECT $1, $2, r.step_id, r.parent_id, r.position, r.kind, r.planned, r.max_attempts, r.bindings
         FROM jsonb_to_recordset($3::jsonb) AS r(step_id text, parent_id text, position integer, kind text, planned jsonb, max_attempts integer, bindings jsonb)`,
      [run.id, run.tenant, JSON.stringify(batch)],
    );
  }
}
