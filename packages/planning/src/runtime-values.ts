import {
  parseTemplate,
  type Reference,
  renderTemplate,
  templateExpressions,
} from "./expression.ts";
import { canonicalJson } from "./plan-hash.ts";
import { isRuntimeValue, type PlannedStep, type RuntimeValue } from "./plan-types.ts";

/** Alias of {@link isRuntimeValue} for internal brevity. */
export const isRuntime: (value: unknown) => value is RuntimeValue = isRuntimeValue;

/**
 * Module parameters are text (argv elements, environment values, paths): a template that
 * evaluated to a number, boolean or list becomes its canonical JSON text, so `"{{ index }}"`
 * reaches a process as "0" whatever produced it.
 */
export function textLeaves(value: unknown): unknown {
  if (isRuntime(value) || typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(textLeaves);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, textLeaves(inner)]),
    );
  }
  return canonicalJson(value);
}

/** A template's value as module-parameter text: strings as they are, the rest canonical JSON. */
export function asText(value: unknown): string {
  return typeof value === "string" ? value : canonicalJson(value);
}

/** True when a RuntimeValue occurs anywhere below `value`. */
export function containsRuntime(value: unknown): boolean {
  if (isRuntime(value)) return true;
  if (Array.isArray(value)) return value.some(containsRuntime);
  if (value !== null && typeof value === "object")
    return Object.values(value).some(containsRuntime);
  return false;
}

function mapRuntime(value: unknown, replace: (runtime: RuntimeValue) => unknown): unknown {
  if (isRuntime(value)) return replace(value);
  if (Array.isArray(value)) return value.map((item) => mapRuntime(item, replace));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, mapRuntime(inner, replace)]),
    );
  }
  return value;
}

/** The names every RuntimeValue below `value` reads (e.g. to load the step outputs they need). */
export function runtimeReferences(value: unknown): Reference[] {
  const found: Reference[] = [];
  mapRuntime(value, (runtime) => {
    const template = parseTemplate(runtime.$runtime) ?? parseTemplate(`{{ ${runtime.$runtime} }}`);
    for (const expression of template === undefined ? [] : templateExpressions(template)) {
      found.push(...expression.references);
    }
    return runtime;
  });
  return found;
}

/**
 * Evaluates a RuntimeValue: a `{{ }}` template (run parameters, items) or, for `when`, a bare
 * expression. Throws ExpressionError with a readable message.
 */
export function evaluateRuntimeValue(
  runtime: RuntimeValue,
  bindings: Record<string, unknown>,
): unknown {
  const source = runtime.$runtime;
  const template = parseTemplate(source) ?? parseTemplate(`{{ ${source} }}`);
  if (template === undefined) return source;
  return renderTemplate(template, bindings);
}

/**
 * Replaces every RuntimeValue below `value` by its value under `bindings`
 * (`inputs`, `steps.<id>.outputs|status`, `secrets`, `item`, `index`).
 */
export function resolveRuntimeValues(
  value: unknown,
  bindings: Record<string, unknown>,
  options: { text?: boolean } = {},
): unknown {
  return mapRuntime(value, (runtime) => {
    const resolved = evaluateRuntimeValue(runtime, bindings);
    return options.text === true ? asText(resolved) : resolved;
  });
}

/**
 * Resolves only the RuntimeValues whose names are all bound in `bindings`, leaving the rest;
 * used when a map child is created (item and index become known, step outputs may not be).
 */
export function resolveKnownRuntimeValues(
  value: unknown,
  bindings: Record<string, unknown>,
  options: { text?: boolean } = {},
): unknown {
  return mapRuntime(value, (runtime) => {
    const references = runtimeReferences(runtime);
    const known = references.every(
      (ref) => Object.hasOwn(bindings, ref.root) && ref.root !== "secrets",
    );
    if (!known) return runtime;
    const resolved = evaluateRuntimeValue(runtime, bindings);
    return options.text === true ? asText(resolved) : resolved;
  });
}

/**
 * Expands a map's planned template for one item at run time, exactly as the planner does
 * for items known at plan time: ids become `<mapId>[<index>]::<id>` (recursively for nested
 * steps), values that only needed `item`/`index`/`inputs` are resolved, run parameters are text.
 */
export function expandMapTemplate(
  template: PlannedStep,
  mapId: string,
  index: number,
  item: unknown,
  inputs: Record<string, unknown>,
): PlannedStep {
  const prefix = `${mapId}[${index}]::`;
  const bindings = { inputs, item, index };
  const rename = (step: PlannedStep, parentId: string): PlannedStep => {
    const enabled = resolveKnownRuntimeValues(step.enabled, bindings) as PlannedStep["enabled"];
    const decidedNow = isRuntime(step.enabled) && enabled === false;
    const base = {
      ...step,
      id: `${prefix}${step.id}`,
      parentId,
      enabled,
      skipReason: decidedNow
        ? `when \`${(step.enabled as RuntimeValue).$runtime}\` is false`
        : step.skipReason,
    };
    switch (base.kind) {
      case "run":
        return {
          ...base,
          run: {
            ...base.run,
            with: resolveKnownRuntimeValues(base.run.with, bindings, { text: true }) as Record<
              string,
              unknown
            >,
          },
        };
      case "parallel":
        return {
          ...base,
          parallel: {
            ...base.parallel,
            steps: base.parallel.steps.map((child) => rename(child, base.id)),
          },
        };
      case "map":
        return {
          ...base,
          map: {
            ...base.map,
            items: resolveKnownRuntimeValues(base.map.items, bindings) as unknown[] | RuntimeValue,
            steps: base.map.steps.map((child) => rename(child, base.id)),
            template: base.map.template,
          },
        };
      case "policy-gate":
        return {
          ...base,
          gate: {
            ...base.gate,
            parameters: resolveKnownRuntimeValues(base.gate.parameters, bindings) as Record<
              string,
              unknown
            >,
          },
        };
      default:
        return base;
    }
  };
  return rename(template, mapId);
}
