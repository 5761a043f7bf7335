import {
  type CelValue,
  celEnv,
  isCelError,
  isCelList,
  isCelMap,
  isCelUint,
  parse,
  plan,
} from "@bufbuild/cel";
import canonicalize from "canonicalize";
import {
  budgetFunction,
  DEFAULT_MAX_EVALUATION_MS,
  DEFAULT_MAX_ITERATIONS,
  type EvaluationBudget,
  instrumentForBudget,
  withBudget,
} from "./expression-budget.ts";

type ParsedExpr = ReturnType<typeof parse>;
type Expr = NonNullable<ParsedExpr["expr"]>;

/** A name an expression reads, e.g. `inputs.image` → `{ root: "inputs", path: ["image"] }`. */
export interface Reference {
  root: string;
  path: string[];
}

/** A parsed CEL expression with the names it reads. */
export interface Expression {
  readonly source: string;
  readonly parsed: ParsedExpr;
  readonly references: readonly Reference[];
}

/** An expression that cannot be parsed or evaluated; `message` is safe to show. */
export class ExpressionError extends Error {
  override readonly name = "ExpressionError";
}

const env = celEnv({ funcs: [budgetFunction] });

/** The budget every evaluation gets unless its caller passes another. */
const defaultBudget: EvaluationBudget = {
  maxIterations: DEFAULT_MAX_ITERATIONS,
  maxMs: DEFAULT_MAX_EVALUATION_MS,
};

type Evaluator = ReturnType<typeof plan>;

/** Planned, budget-instrumented evaluators, made once per parsed expression. */
const evaluators = new WeakMap<Expression, Evaluator>();

function evaluatorOf(expression: Expression): Evaluator {
  let evaluator = evaluators.get(expression);
  if (evaluator === undefined) {
    evaluator = plan(env, instrumentForBudget(expression.parsed));
    evaluators.set(expression, evaluator);
  }
  return evaluator;
}

function chainOf(expr: Expr | undefined): Reference | undefined {
  const path: string[] = [];
  let node = expr;
  while (node !== undefined) {
    const kind = node.exprKind;
    if (kind.case === "identExpr") return { root: kind.value.name, path: path.reverse() };
    if (kind.case === "selectExpr" && !kind.value.testOnly) {
      path.push(kind.value.field);
      node = kind.value.operand;
      continue;
    }
    if (
      kind.case === "callExpr" &&
      kind.value.function === "_[_]" &&
      kind.value.args.length === 2
    ) {
      const index = kind.value.args[1]?.exprKind;
      if (index?.case === "constExpr" && index.value.constantKind.case === "stringValue") {
        path.push(index.value.constantKind.value);
        node = kind.value.args[0];
        continue;
      }
    }
    return undefined;
  }
  return undefined;
}

function collectReferences(root: Expr | undefined): Reference[] {
  const found: Reference[] = [];
  const visit = (expr: Expr | undefined, bound: ReadonlySet<string>): void => {
    if (expr === undefined) return;
    const chain = chainOf(expr);
    if (chain !== undefined) {
      if (!bound.has(chain.root)) found.push(chain);
      if (expr.exprKind.case !== "callExpr") return;
    }
    const kind = expr.exprKind;
    switch (kind.case) {
      case "selectExpr":
        visit(kind.value.operand, bound);
        return;
      case "callExpr":
        visit(kind.value.target, bound);
        for (const arg of kind.value.args) visit(arg, bound);
        return;
      case "listExpr":
        for (const element of kind.value.elements) visit(element, bound);
        return;
      case "structExpr":
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === "mapKey") visit(entry.keyKind.value, bound);
          visit(entry.value, bound);
        }
        return;
      case "comprehensionExpr": {
        const c = kind.value;
        visit(c.iterRange, bound);
        visit(c.accuInit, bound);
        const inner = new Set([...bound, c.iterVar, c.iterVar2, c.accuVar].filter((v) => v !== ""));
        visit(c.loopCondition, inner);
        visit(c.loopStep, inner);
        visit(c.result, inner);
        return;
      }
      default:
        return;
    }
  };
  visit(root, new Set());
  return found;
}

/** Parses a CEL expression; throws {@link ExpressionError} with the parser's explanation. */
export function parseExpression(source: string, maxLength = 4096): Expression {
  if (source.length > maxLength) {
    throw new ExpressionError(
      `expression is ${source.length} characters; the limit is ${maxLength}`,
    );
  }
  if (source.trim() === "") throw new ExpressionError("expression is empty");
  let parsed: ParsedExpr;
  try {
    parsed = parse(source);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ExpressionError(
      `cannot parse expression \`${source}\`: ${message.replace(/^<input>:/, "at ")}`,
    );
  }
  return { source, parsed, references: collectReferences(parsed.expr) };
}

/** JSON integers become CEL ints (bigint) so `inputs.count + 1` type-checks as int arithmetic. */
function toCel(value: unknown): unknown {
  if (typeof value === "number") return Number.isInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map(toCel);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toCel(inner)]));
  }
  return value;
}

/** Converts a CEL result back to JSON data; types JSON cannot hold are an error. */
function fromCel(value: CelValue, source: string): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "bigint") {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new ExpressionError(`\`${source}\` produced an integer outside the JSON-safe range`);
    }
    return Number(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ExpressionError(`\`${source}\` produced ${value}`);
    return value;
  }
  if (isCelUint(value)) return fromCel(value.value, source);
  if (isCelList(value)) return [...value].map((item) => fromCel(item, source));
  if (isCelMap(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of value) {
      out[String(isCelUint(key) ? key.value : key)] = fromCel(inner, source);
    }
    return out;
  }
  throw new ExpressionError(`\`${source}\` produced a value that is not JSON (${typeof value})`);
}

/**
 * Evaluates an expression over JSON bindings and returns JSON data. Every evaluation is bounded
 * (`budget`, default 100,000 comprehension iterations and 1 s): an expression that needs more
 * fails with an {@link ExpressionError} naming it, instead of stalling the service for every
 * tenant.
 */
export function evaluateExpression(
  expression: Expression,
  bindings: Record<string, unknown>,
  budget: EvaluationBudget = defaultBudget,
): unknown {
  const celBindings = toCel(bindings) as Record<string, never>;
  const evaluator = evaluatorOf(expression);
  let result: CelValue;
  try {
    const run = withBudget(budget, () => evaluator(celBindings) as CelValue);
    if (run.exceeded !== null) {
      throw new ExpressionError(
        run.exceeded === "iterations"
          ? `\`${expression.source}\` exceeded its evaluation budget of ${budget.maxIterations} comprehension iterations (all, exists, map, filter at any depth); simplify it or pass less data`
          : `\`${expression.source}\` exceeded its evaluation budget of ${budget.maxMs} ms; simplify it or pass less data`,
      );
    }
    result = run.result;
  } catch (error) {
    if (error instanceof ExpressionError) throw error;
    throw new ExpressionError(
      `\`${expression.source}\` failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (isCelError(result)) {
    throw new ExpressionError(`\`${expression.source}\` failed: ${result.message}`);
  }
  return fromCel(result, expression.source);
}

/** A string with `{{ expr }}` parts. */
export interface Template {
  readonly source: string;
  readonly parts: readonly (string | Expression)[];
  /** True when the string is exactly one `{{ expr }}`: it evaluates to the expression's value. */
  readonly whole: boolean;
}

const templatePart = /\{\{([\s\S]*?)\}\}/g;

/** Finds the `{{ }}` parts of a string; undefined when it has none. */
export function parseTemplate(source: string, maxLength?: number): Template | undefined {
  if (!source.includes("{{")) return undefined;
  const parts: (string | Expression)[] = [];
  let last = 0;
  for (const match of source.matchAll(templatePart)) {
    if (match.index > last) parts.push(source.slice(last, match.index));
    parts.push(parseExpression((match[1] ?? "").trim(), maxLength));
    last = match.index + match[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  const rest = parts.filter((part) => typeof part === "string").join("");
  if (rest.includes("{{") || rest.includes("}}")) {
    throw new ExpressionError("unbalanced `{{` or `}}` in template");
  }
  const whole = parts.length === 1 && typeof parts[0] !== "string";
  return { source, parts, whole };
}

/** Every expression in a template. */
export function templateExpressions(template: Template): Expression[] {
  return template.parts.filter((part): part is Expression => typeof part !== "string");
}

/** How an interpolated value appears inside a string: strings as-is, the rest as canonical JSON. */
function interpolate(value: unknown): string {
  return typeof value === "string" ? value : (canonicalize(value) ?? "null");
}

/** Evaluates a template: a whole template yields the value, otherwise the interpolated string. */
export function renderTemplate(template: Template, bindings: Record<string, unknown>): unknown {
  if (template.whole) return evaluateExpression(template.parts[0] as Expression, bindings);
  return template.parts
    .map((part) =>
      typeof part === "string" ? part : interpolate(evaluateExpression(part, bindings)),
    )
    .join("");
}
