import { create } from "@bufbuild/protobuf";
import {
  canonicalJson,
  type Diagnostic,
  isRuntimeValue,
  type PlannedOutput,
  type PlannedStepKind,
  type PlanResult,
  type SimulatedStep,
  type SimulationStatus,
} from "@packrun/planning";
import {
  ApprovalRequirementSchema,
  type DeclaredOutput,
  DeclaredOutputSchema,
  type Diagnostic as DiagnosticMessage,
  DiagnosticSchema,
  DiagnosticSeverity,
  type PlanSummary,
  PlanSummarySchema,
  type SimulatedStep as SimulatedStepMessage,
  SimulatedStepSchema,
  SimulationStatus as SimulationStatusEnum,
  StepKind,
} from "@packrun/proto/pack/v1";

const stepKinds: Record<PlannedStepKind, StepKind> = {
  run: StepKind.RUN,
  parallel: StepKind.PARALLEL,
  map: StepKind.MAP,
  "approval-gate": StepKind.APPROVAL_GATE,
  "policy-gate": StepKind.POLICY_GATE,
};

const simulationStatuses: Record<SimulationStatus, SimulationStatusEnum> = {
  pending: SimulationStatusEnum.PENDING,
  skipped: SimulationStatusEnum.SKIPPED,
  "requires-approval": SimulationStatusEnum.REQUIRES_APPROVAL,
  "requires-policy": SimulationStatusEnum.REQUIRES_POLICY,
};

/** A validation problem as a `packrun.pack.v1.Diagnostic`; errors unless said otherwise. */
export function diagnosticMessage(
  diagnostic: Diagnostic,
  severity: DiagnosticSeverity = DiagnosticSeverity.ERROR,
): DiagnosticMessage {
  return create(DiagnosticSchema, {
    code: diagnostic.code,
    path: diagnostic.path,
    line: diagnostic.line,
    column: diagnostic.column,
    message: diagnostic.message,
    severity,
  });
}

// An output's path or expression as text: run-time values show the template they came from.
function outputText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (isRuntimeValue(value)) return value.$runtime;
  return canonicalJson(value);
}

/** A declared output of the plan as a `packrun.pack.v1.DeclaredOutput`. */
export function declaredOutputMessage(output: PlannedOutput): DeclaredOutput {
  return create(DeclaredOutputSchema, {
    name: output.name,
    type: output.type,
    path: outputText(output.path),
    expression: outputText(output.expression),
  });
}

/** The summary of a plan as a `packrun.pack.v1.PlanSummary`. */
export function planSummaryMessage(result: Omit<PlanResult, "model">): PlanSummary {
  const { summary, plan } = result;
  return create(PlanSummarySchema, {
    packName: summary.packName,
    packVersion: summary.packVersion,
    packDigest: summary.packDigest,
    approvals: summary.approvals.map((approval) =>
      create(ApprovalRequirementSchema, {
        id: approval.id,
        grants: approval.grants,
        required: approval.required,
        expiresAfterSeconds: BigInt(Math.ceil(approval.expiresAfterSeconds ?? 0)),
        reason: approval.reason,
      }),
    ),
    secretNames: summary.secretNames,
    policyNames: summary.policyNames,
    stepCount: summary.stepCount,
    outputs: plan.outputs.map(declaredOutputMessage),
    sandboxMode: summary.sandboxMode,
  });
}

/** A simulated step and, recursively, its map or parallel children. */
export function simulatedStepMessage(step: SimulatedStep): SimulatedStepMessage {
  return create(SimulatedStepSchema, {
    id: step.id,
    name: step.name,
    kind: stepKinds[step.kind],
    status: simulationStatuses[step.status],
    reason: step.reason,
    uses: step.uses ?? "",
    gateRef: step.gateRef ?? "",
    runtimeDependent: step.runtimeDependent,
    children: step.children.map(simulatedStepMessage),
  });
}
