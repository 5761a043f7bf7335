import { canonicalJson } from "@packrun/planning";
import { digestJson } from "./evidence-json.ts";

/** The parts of a run's claims that a plan can confirm or refute. */
export interface PlanClaims {
  pack: { name: string; version: string };
  stepIds: readonly string[];
  approvalIds: readonly string[];
  policyStepIds: readonly string[];
  /** Input digests by name (from a predicate) ... */
  inputDigests?: ReadonlyMap<string, string>;
  /** ... or input values by name (from a run record). */
  inputValues?: Readonly<Record<string, unknown>>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface PlanIndex {
  stepIds: Set<string>;
  mapIds: Set<string>;
}

function indexSteps(steps: unknown, index: PlanIndex): void {
  if (!Array.isArray(steps)) return;
  for (const step of steps) {
    if (!isRecord(step) || typeof step.id !== "string") continue;
    index.stepIds.add(step.id);
    if (isRecord(step.parallel)) indexSteps(step.parallel.steps, index);
    if (isRecord(step.map)) {
      index.mapIds.add(step.id);
      indexSteps(step.map.steps, index);
    }
  }
}

const mapChild = /^(.*)\[(\d+)\]::(.+)$/;

/** True for a planned step id, or a map child `<mapId>[<index>]::<templateId>` of a planned map. */
function isKnownStep(id: string, index: PlanIndex): boolean {
  if (index.stepIds.has(id)) return true;
  const match = mapChild.exec(id);
  if (match === null) return false;
  const parent = match[1] as string;
  return index.mapIds.has(parent) || isKnownStep(parent, index);
}

/**
 * Lists every way `claims` contradict `plan` (a parsed packrun plan): another pack, steps the plan
 * does not have, undeclared approvals, or inputs that differ from the plan's. Empty when
 * consistent. Parts the plan does not describe are not judged.
 */
export function planConsistencyProblems(plan: unknown, claims: PlanClaims): string[] {
  if (!isRecord(plan)) return ["plan is not a JSON object"];
  const problems: string[] = [];
  const pack = isRecord(plan.pack) ? plan.pack : {};
  if (pack.name !== claims.pack.name || pack.version !== claims.pack.version) {
    problems.push(
      `pack ${claims.pack.name}@${claims.pack.version} is not the plan's ${String(pack.name)}@${String(pack.version)}`,
    );
  }
  const index: PlanIndex = { stepIds: new Set(), mapIds: new Set() };
  indexSteps(plan.steps, index);
  for (const id of [...claims.stepIds, ...claims.policyStepIds]) {
    if (!isKnownStep(id, index)) problems.push(`step ${id} is not in the plan`);
  }
  if (Array.isArray(plan.approvals)) {
    const declared = new Set(
      plan.approvals.filter(isRecord).map((approval) => approval.id as unknown),
    );
    for (const id of claims.approvalIds) {
      if (!declared.has(id)) problems.push(`approval ${id} is not declared by the plan`);
    }
  }
  if (isRecord(plan.inputs)) {
    const planned = plan.inputs;
    const names = new Set(Object.keys(planned));
    if (claims.inputValues !== undefined) {
      for (const name of new Set([...names, ...Object.keys(claims.inputValues)])) {
        const a = planned[name];
        const b = claims.inputValues[name];
        if (a === undefined || b === undefined || canonicalJson(a) !== canonicalJson(b)) {
          problems.push(`input ${name} differs from the plan's`);
        }
      }
    }
    if (claims.inputDigests !== undefined) {
      for (const name of new Set([...names, ...claims.inputDigests.keys()])) {
        const value = planned[name];
        const digest = claims.inputDigests.get(name);
        if (value === undefined || digest === undefined || digestJson(value) !== digest) {
          problems.push(`input ${name} differs from the plan's`);
        }
      }
    }
  }
  return problems;
}
