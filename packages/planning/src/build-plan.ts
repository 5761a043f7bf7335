import { DiagnosticList, type DocumentPath, PackValidationError } from "./diagnostic.ts";
import { durationSeconds } from "./durations.ts";
import {
  type Expression,
  ExpressionError,
  evaluateExpression,
  renderTemplate,
  templateExpressions,
} from "./expression.ts";
import { defaultPackLimits, type PackLimits } from "./limits.ts";
import type { RetryPolicyDeclaration, RunDeclaration, StepDeclaration } from "./manifest-types.ts";
import { canonicalJson, computePlanHash } from "./plan-hash.ts";
import type {
  FailurePolicy,
  Plan,
  PlannedApproval,
  PlannedStep,
  PlannedStepOutput,
  RuntimeValue,
} from "./plan-types.ts";
import { resolveInputs } from "./resolve-inputs.ts";
import { asText, containsRuntime, isRuntime, textLeaves } from "./runtime-values.ts";
import { siteKey, type ValidatedManifest, validateManifest } from "./validate-manifest.ts";
import { parseYamlSource } from "./yaml-source.ts";

/** What a person needs to know before running a plan. */
export interface PlanSummary {
  packName: string;
  packVersion: string;
  /** `sha256:<hex>` of the manifest bytes. */
  packDigest: string;
  approvals: PlannedApproval[];
  secretNames: string[];
  policyNames: string[];
  /** Planned steps, counting expanded map and parallel children. */
  stepCount: number;
  outputs: { name: string; type: string; path: string; expression: string }[];
  sandboxMode: string;
}

/** A plan with its canonical text and hash. */
export interface PlanResult {
  plan: Plan;
  /** RFC 8785 canonical JSON of `plan`: the bytes `planHash` covers. */
  planJson: string;
  planHash: string;
  summary: PlanSummary;
  model: ValidatedManifest;
}

/** Options for {@link planPack}. */
export interface PlanOptions {
  /** Input values, e.g. from `--inputs inputs.json`. */
  inputs?: Readonly<Record<string, unknown>>;
  /** Names of the secrets that will be supplied; when given, they must match the declarations. */
  suppliedSecretNames?: readonly string[];
  limits?: Partial<PackLimits>;
}

/** Roots an expression may read at plan time; anything else makes it a run-time value. */
const planTimeRoots = new Set(["inputs", "item", "index"]);

function knownAtPlanTime(
  expressions: readonly Expression[],
  bindings: Record<string, unknown>,
): boolean {
  return expressions.every((expression) =>
    expression.references.every(
      (ref) => planTimeRoots.has(ref.root) && Object.hasOwn(bindings, ref.root),
    ),
  );
}

function mergeRetries(layers: readonly (RetryPolicyDeclaration | undefined)[]): FailurePolicy {
  const merged: RetryPolicyDeclaration = Object.assign(
    {},
    ...layers.filter((layer) => layer !== undefined),
  );
  const jitter =
    merged.jitter === true
      ? 0.5
      : merged.jitter === false || merged.jitter === undefined
        ? 0
        : merged.jitter;
  return {
    maxAttempts: merged.maxAttempts ?? 1,
    backoffSeconds: merged.backoffSeconds ?? 0,
    backoff: merged.backoff ?? "fixed",
    maxBackoffSeconds: merged.maxBackoffSeconds ?? null,
    jitter,
  };
}

interface StepContext {
  parentId: string | null;
  /** Prefix for ids inside an expanded map child, e.g. `scan[2]::`. */
  idPrefix: string;
  bindings: Record<string, unknown>;
  retryLayers: readonly (RetryPolicyDeclaration | undefined)[];
  /** Skipped because an ancestor is skipped at plan time. */
  ancestorSkipped: string | null;
}

class PlanBuilder {
  readonly #model: ValidatedManifest;
  readonly #limits: PackLimits;
  readonly #diagnostics = new DiagnosticList();
  #count = 0;

  constructor(model: ValidatedManifest, limits: PackLimits) {
    this.#model = model;
    this.#limits = limits;
  }

  get diagnostics(): DiagnosticList {
    return this.#diagnostics;
  }

  #fail(path: DocumentPath, error: unknown): void {
    if (!(error instanceof ExpressionError)) throw error;
    this.#diagnostics.add("PACK_EXPRESSION", path, this.#model.source.locate(path), error.message);
  }

  /**
   * Replaces templates below `value` by their values, or by RuntimeValues when not yet known.
   * With `text`, a template's value becomes text at once (module parameters are text), so data
   * from inputs can never be mistaken for structure such as a RuntimeValue.
   */
  resolve(
    value: unknown,
    path: DocumentPath,
    bindings: Record<string, unknown>,
    text = false,
  ): unknown {
    if (typeof value === "string") {
      const template = this.#model.templates.get(siteKey(path));
      if (template === undefined) return value;
      if (!knownAtPlanTime(templateExpressions(template), bindings))
        return { $runtime: value } satisfies RuntimeValue;
      try {
        const rendered = renderTemplate(template, bindings);
        return text ? asText(rendered) : rendered;
      } catch (error) {
        this.#fail(path, error);
        return null;
      }
    }
    if (Array.isArray(value))
      return value.map((item, index) => this.resolve(item, [...path, index], bindings, text));
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([key, inner]) => [
          key,
          this.resolve(inner, [...path, key], bindings, text),
        ]),
      );
    }
    return value;
  }

  #enabled(
    declaration: StepDeclaration,
    path: DocumentPath,
    bindings: Record<string, unknown>,
  ): { enabled: boolean | RuntimeValue; skipReason: string | null } {
    if (declaration.when === undefined) return { enabled: true, skipReason: null };
    if (typeof declaration.when === "boolean") {
      return { enabled: declaration.when, skipReason: declaration.when ? null : "when is false" };
    }
    const whenPath = [...path, "when"];
    const expression = this.#model.expressions.get(siteKey(whenPath)) as Expression;
    if (!knownAtPlanTime([expression], bindings))
      return { enabled: { $runtime: expression.source }, skipReason: null };
    try {
      const value = evaluateExpression(expression, bindings);
      if (typeof value !== "boolean") {
        throw new ExpressionError(
          `when must evaluate to true or false; \`${expression.source}\` gave ${JSON.stringify(value)}`,
        );
      }
      return {
        enabled: value,
        skipReason: value ? null : `when \`${expression.source}\` is false`,
      };
    } catch (error) {
      this.#fail(whenPath, error);
      return { enabled: false, skipReason: null };
    }
  }

  step(declaration: StepDeclaration, path: DocumentPath, context: StepContext): PlannedStep {
    if (++this.#count > this.#limits.maxPlannedSteps) {
      throw new PackValidationError([
        {
          code: "PACK_LIMIT",
          path: "spec.steps",
          line: 0,
          column: 0,
          message: `the plan has more than ${this.#limits.maxPlannedSteps} steps after map expansion`,
        },
      ]);
    }
    const id = `${context.idPrefix}${declaration.id}`;
    const decided =
      context.ancestorSkipped !== null
        ? { enabled: false, skipReason: context.ancestorSkipped }
        : this.#enabled(declaration, path, context.bindings);
    const retryLayers = [...context.retryLayers, declaration.retries];
    const base = {
      id,
      name: declaration.name ?? declaration.id,
      parentId: context.parentId,
      enabled: decided.enabled,
      skipReason: decided.skipReason,
      timeoutSeconds:
        declaration.timeout === undefined ? null : durationSeconds(declaration.timeout),
      failure: mergeRetries(retryLayers),
    };
    const childContext = (extra: Partial<StepContext>): StepContext => ({
      ...context,
      parentId: id,
      retryLayers,
      ancestorSkipped: decided.enabled === false ? `parent step "${id}" is skipped` : null,
      ...extra,
    });
    if (declaration.run !== undefined) {
      return {
        ...base,
        kind: "run",
        run: {
          uses: declaration.run.uses,
          with: textLeaves(
            this.resolve(
              declaration.run.with ?? {},
              [...path, "run", "with"],
              context.bindings,
              true,
            ),
          ) as Record<string, unknown>,
          artifacts: declaration.run.artifacts ?? [],
          ...plannedStepOutputs(declaration.run.outputs),
        },
      };
    }
    if (declaration.parallel !== undefined) {
      const parallel = declaration.parallel;
      return {
        ...base,
        kind: "parallel",
        parallel: {
          maxParallel: parallel.maxParallel ?? 0,
          continueOnError: parallel.continueOnError ?? false,
          steps: parallel.steps.map((child, index) =>
            this.step(child, [...path, "parallel", "steps", index], childContext({})),
          ),
        },
      };
    }
    if (declaration.map !== undefined) {
      const map = declaration.map;
      const itemsPath = [...path, "map", "items"];
      let items = this.resolve(map.items, itemsPath, context.bindings);
      if (Array.isArray(items) && items.some((item) => containsRuntime(item))) {
        this.#diagnostics.add(
          "PACK_EXPRESSION",
          itemsPath,
          this.#model.source.locate(itemsPath),
          "some map items are only known at run time; write the whole list as one expression, e.g. items: \"{{ ['a', steps.x.outputs.y] }}\"",
        );
        items = [];
      }
      if (!Array.isArray(items) && !isRuntime(items)) {
        this.#diagnostics.add(
          "PACK_EXPRESSION",
          itemsPath,
          this.#model.source.locate(itemsPath),
          `map items must evaluate to a list; got ${items === null ? "null" : typeof items}`,
        );
        items = [];
      }
      const steps = Array.isArray(items)
        ? items.map((item, index) =>
            this.step(
              map.step,
              [...path, "map", "step"],
              childContext({
                idPrefix: `${id}[${index}]::`,
                bindings: { ...context.bindings, item, index },
              }),
            ),
          )
        : [];
      // With run-time items the template is planned once without item/index (those values
      // stay RuntimeValues); the executor expands it with expandMapTemplate when reached.
      const template = Array.isArray(items)
        ? null
        : this.step(map.step, [...path, "map", "step"], childContext({ idPrefix: "" }));
      return {
        ...base,
        kind: "map",
        map: {
          items: items as unknown[] | RuntimeValue,
          maxParallel: map.maxParallel ?? 0,
          continueOnError: map.continueOnError ?? false,
          steps,
          templateId: map.step.id,
          template,
        },
      };
    }
    const gate = declaration.gate ?? {};
    if (gate.approval !== undefined) {
      return {
        ...base,
        kind: "approval-gate",
        gate: { approvalId: gate.approval.id, message: gate.approval.message ?? "" },
      };
    }
    const policy = gate.policy as NonNullable<typeof gate.policy>;
    return {
      ...base,
      kind: "policy-gate",
      gate: {
        policy: policy.policy,
        parameters: this.resolve(
          policy.parameters ?? {},
          [...path, "gate", "policy", "parameters"],
          context.bindings,
        ) as Record<string, unknown>,
        failAction: policy.failAction ?? "fail",
      },
    };
  }
}

/**
 * The planned form of a run step's declared outputs; nothing when none are declared, so plans
 * (and their hashes) of packs without typed outputs stay as they were.
 */
function plannedStepOutputs(
  declared: RunDeclaration["outputs"],
): { outputs: Record<string, PlannedStepOutput> } | Record<string, never> {
  if (declared === undefined) return {};
  return {
    outputs: Object.fromEntries(
      Object.entries(declared).map(([name, output]) => [
        name,
        {
          type: output.type ?? (output.schema === undefined ? "string" : "json"),
          schema: output.schema ?? null,
        },
      ]),
    ),
  };
}

function checkSecrets(model: ValidatedManifest, supplied: readonly string[] | undefined): void {
  if (supplied === undefined) return;
  const diagnostics = new DiagnosticList();
  const declared = (model.manifest.spec.secrets ?? []).map((secret) => secret.name);
  const none = { line: 0, column: 0 };
  for (const name of supplied) {
    if (!declared.includes(name))
      diagnostics.add(
        "SECRET_UNDECLARED",
        ["secrets", name],
        none,
        `secret "${name}" is not declared by the pack`,
      );
  }
  declared.forEach((name, index) => {
    if (!supplied.includes(name)) {
      const path = ["spec", "secrets", index];
      diagnostics.add(
        "SECRET_MISSING",
        ["secrets", name],
        model.source.locate(path),
        `secret "${name}" is declared but not supplied`,
      );
    }
  });
  diagnostics.throwIfAny();
}

function countSteps(steps: readonly PlannedStep[]): number {
  let total = 0;
  for (const step of steps) {
    total++;
    if (step.kind === "parallel") total += countSteps(step.parallel.steps);
    if (step.kind === "map") total += countSteps(step.map.steps);
  }
  return total;
}

/**
 * Builds the plan of a validated manifest with the given inputs. Deterministic: the same
 * manifest data and inputs give the same plan on any machine, whatever the YAML formatting.
 */
export function buildPlan(model: ValidatedManifest, options: PlanOptions = {}): PlanResult {
  const limits = { ...defaultPackLimits, ...options.limits };
  const inputs = resolveInputs(model, options.inputs ?? {});
  checkSecrets(model, options.suppliedSecretNames);
  const { manifest } = model;
  const spec = manifest.spec;
  const builder = new PlanBuilder(model, limits);
  const bindings = { inputs };
  const steps = spec.steps.map((step, index) =>
    builder.step(step, ["spec", "steps", index], {
      parentId: null,
      idPrefix: "",
      bindings,
      retryLayers: [spec.failure?.retries],
      ancestorSkipped: null,
    }),
  );
  const outputs = (spec.outputs ?? []).map((output, index) => ({
    name: output.name,
    type: output.type,
    path:
      output.path === undefined
        ? null
        : builder.resolve(output.path, ["spec", "outputs", index, "path"], bindings),
    expression:
      output.expression === undefined
        ? null
        : builder.resolve(output.expression, ["spec", "outputs", index, "expression"], bindings),
  }));
  builder.diagnostics.throwIfAny();
  const approvals: PlannedApproval[] = (spec.approvals ?? []).map((approval) => ({
    id: approval.id,
    grants: approval.grants ?? [],
    required: approval.required ?? 1,
    expiresAfterSeconds:
      approval.expiresAfter === undefined ? null : durationSeconds(approval.expiresAfter),
    reason: approval.reason ?? "",
  }));
  const plan: Plan = {
    planVersion: 1,
    pack: { name: manifest.metadata.name, version: manifest.metadata.version },
    inputs,
    secrets: (spec.secrets ?? []).map((secret) => secret.name),
    sandbox: {
      mode: spec.sandbox?.mode ?? "open",
      egressAllowlist: spec.sandbox?.egressAllowlist ?? [],
    },
    ...(spec.timeout === undefined ? {} : { timeoutSeconds: durationSeconds(spec.timeout) }),
    approvals,
    policies: (spec.policies ?? []).map((policy) => ({
      name: policy.name,
      expression: policy.expression,
    })),
    steps,
    outputs,
  };
  const planJson = canonicalJson(plan);
  const show = (value: unknown) =>
    value === null ? "" : typeof value === "string" ? value : canonicalJson(value);
  return {
    plan,
    planJson,
    planHash: computePlanHash(plan),
    model,
    summary: {
      packName: plan.pack.name,
      packVersion: plan.pack.version,
      packDigest: model.source.digest,
      approvals,
      secretNames: plan.secrets,
      policyNames: plan.policies.map((policy) => policy.name),
      stepCount: countSteps(steps),
      outputs: outputs.map((output) => ({
        name: output.name,
        type: output.type,
        path: show(output.path),
        expression: show(output.expression),
      })),
      sandboxMode: plan.sandbox.mode,
    },
  };
}

/** Parses, validates and checks a manifest without inputs; throws a PackValidationError. */
export function loadManifest(text: string, limits: Partial<PackLimits> = {}): ValidatedManifest {
  const effective = { ...defaultPackLimits, ...limits };
  return validateManifest(parseYamlSource(text, effective), effective);
}

/** Parses, validates and plans manifest text in one call. */
export function planPack(text: string, options: PlanOptions = {}): PlanResult {
  return buildPlan(loadManifest(text, options.limits), options);
}
