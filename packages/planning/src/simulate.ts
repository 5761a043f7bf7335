import type { PlanResult, PlanSummary } from "./build-plan.ts";
import { isRuntimeValue, type PlannedOutput, type PlannedStep } from "./plan-types.ts";

export type SimulationStatus = "pending" | "skipped" | "requires-approval" | "requires-policy";

/** How a simulation classifies one step. */
export interface SimulatedStep {
  id: string;
  name: string;
  kind: PlannedStep["kind"];
  status: SimulationStatus;
  /** Why it is skipped, gated or undecided; empty for plain pending steps. */
  reason: string;
  /** Module of run steps. */
  uses?: string;
  /** Approval id or policy name of gates. */
  gateRef?: string;
  /** True when its `when`, parameters or items are only known at run time. */
  runtimeDependent: boolean;
  children: SimulatedStep[];
}

/** The result of walking a plan without executing anything. */
export interface Simulation {
  planHash: string;
  steps: SimulatedStep[];
  outputs: PlannedOutput[];
  summary: PlanSummary;
}

function hasRuntime(value: unknown): boolean {
  if (isRuntimeValue(value)) return true;
  if (Array.isArray(value)) return value.some(hasRuntime);
  if (value !== null && typeof value === "object") return Object.values(value).some(hasRuntime);
  return false;
}

function simulateStep(
  step: PlannedStep,
  approvals: PlanResult["plan"]["approvals"],
): SimulatedStep {
  const children =
    step.kind === "parallel" ? step.parallel.steps : step.kind === "map" ? step.map.steps : [];
  const out: SimulatedStep = {
    id: step.id,
    name: step.name,
    kind: step.kind,
    status: "pending",
    reason: "",
    runtimeDependent: false,
    children: children.map((child) => simulateStep(child, approvals)),
  };
  const notes: string[] = [];
  if (step.kind === "run") {
    out.uses = step.run.uses;
    if (hasRuntime(step.run.with)) {
      out.runtimeDependent = true;
      notes.push("parameters are resolved at run time");
    }
  }
  if (step.kind === "map" && isRuntimeValue(step.map.items)) {
    out.runtimeDependent = true;
    notes.push(`items are known at run time (${step.map.items.$runtime})`);
  }
  if (step.kind === "approval-gate") {
    out.gateRef = step.gate.approvalId;
    const approval = approvals.find((candidate) => candidate.id === step.gate.approvalId);
    const count = approval?.required ?? 1;
    const grants =
      approval !== undefined && approval.grants.length > 0
        ? ` holding ${approval.grants.join(" or ")}`
        : "";
    out.status = "requires-approval";
    notes.push(
      `needs ${count} approval${count === 1 ? "" : "s"} "${step.gate.approvalId}"${grants}${step.gate.message ? `: ${step.gate.message}` : ""}`,
    );
  }
  if (step.kind === "policy-gate") {
    out.gateRef = step.gate.policy;
    if (hasRuntime(step.gate.parameters)) {
      out.runtimeDependent = true;
      notes.push("parameters are resolved at run time");
    }
    out.status = "requires-policy";
    notes.push(`policy "${step.gate.policy}" must pass (on failure: ${step.gate.failAction})`);
  }
  if (isRuntimeValue(step.enabled)) {
    out.runtimeDependent = true;
    notes.unshift(`runs only if \`${step.enabled.$runtime}\` holds at run time`);
  } else if (step.enabled === false) {
    out.status = "skipped";
    out.reason = step.skipReason ?? "disabled";
    return out;
  }
  out.reason = notes.join("; ");
  return out;
}

/** Classifies every planned step (children included) without running anything. */
export function simulatePlan(result: Omit<PlanResult, "model">): Simulation {
  return {
    planHash: result.planHash,
    steps: result.plan.steps.map((step) => simulateStep(step, result.plan.approvals)),
    outputs: result.plan.outputs,
    summary: result.summary,
  };
}
