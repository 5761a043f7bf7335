export {
  buildPlan,
  loadManifest,
  type PlanOptions,
  type PlanResult,
  type PlanSummary,
  planPack,
} from "./build-plan.ts";
export {
  type Diagnostic,
  type DocumentPath,
  formatDiagnostic,
  formatPath,
  PackValidationError,
  type SourcePosition,
} from "./diagnostic.ts";
export { durationSeconds } from "./durations.ts";
export { type EgressRule, EgressRuleError, parseEgressRule } from "./egress-rule.ts";
export {
  type Expression,
  ExpressionError,
  evaluateExpression,
  parseExpression,
  parseTemplate,
  type Reference,
  renderTemplate,
  type Template,
} from "./expression.ts";
export {
  DEFAULT_MAX_EVALUATION_MS,
  DEFAULT_MAX_ITERATIONS,
  type EvaluationBudget,
} from "./expression-budget.ts";
export { compileInputSchema, describeSchemaErrors } from "./json-schema.ts";
export { defaultPackLimits, type PackLimits } from "./limits.ts";
export { manifestSchema } from "./manifest-schema.ts";
export type * from "./manifest-types.ts";
export { isKnownModule, type ModuleName, moduleCatalog } from "./module-catalog.ts";
export { canonicalJson, computePlanHash, sha256Digest } from "./plan-hash.ts";
export * from "./plan-types.ts";
export {
  configureSharedPlanningPool,
  createPlanningPool,
  type PlannedPack,
  type PlanningPool,
  type PlanningPoolOptions,
  sharedPlanningPool,
} from "./planning-pool.ts";
export {
  containsRuntime,
  evaluateRuntimeValue,
  expandMapTemplate,
  resolveKnownRuntimeValues,
  resolveRuntimeValues,
  runtimeReferences,
  textLeaves,
} from "./runtime-values.ts";
export {
  type SimulatedStep,
  type Simulation,
  type SimulationStatus,
  simulatePlan,
} from "./simulate.ts";
export type { StepSite, ValidatedManifest } from "./validate-manifest.ts";
export type { YamlSource } from "./yaml-source.ts";
