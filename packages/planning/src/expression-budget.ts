import { CelScalar, celFunc, type parse } from "@bufbuild/cel";

type ParsedExpr = ReturnType<typeof parse>;
type Expr = NonNullable<ParsedExpr["expr"]>;

/**
 * Most comprehension iterations (`all`, `exists`, `exists_one`, `map`, `filter`, at any nesting)
 * one evaluation may run. Every other operation of CEL is bounded by the expression's length and
 * the size of its values, so this bounds the work: three nested `all` over 1,000 items (10^9
 * iterations) is refused after 100,000.
 */
export const DEFAULT_MAX_ITERATIONS = 100_000;

/** Most wall time one evaluation may take, checked between iterations. */
export const DEFAULT_MAX_EVALUATION_MS = 1_000;

/** Limits of one evaluation. */
export interface EvaluationBudget {
  readonly maxIterations: number;
  readonly maxMs: number;
}

/** Name of the function wrapped around every comprehension's loop condition. */
const BUDGET_FUNCTION = "@packrun_budget";

interface BudgetState {
  remaining: number;
  deadline: number;
  /** Why the budget ran out, once it did. */
  exceeded: string | null;
}

// Evaluation is synchronous, so the budget of the one running evaluation can live here.
let current: BudgetState | undefined;

/**
 * Counts one iteration of the innermost running comprehension and passes its loop condition
 * through unchanged. Once the budget is spent it throws, which CEL turns into an error value
 * that ends the comprehension (and, because every enclosing loop condition throws too, all of
 * them), so evaluation stops within a few steps.
 */
export const budgetFunction = celFunc(
  BUDGET_FUNCTION,
  [CelScalar.DYN],
  CelScalar.DYN,
  (condition) => {
    const state = current;
    if (state === undefined) return condition;
    if (state.exceeded === null) {
      state.remaining -= 1;
      if (state.remaining < 0) state.exceeded = "iterations";
      // performance.now() is cheap but not free: look at the clock every 1024 iterations.
      else if ((state.remaining & 1023) === 0 && performance.now() > state.deadline)
        state.exceeded = "time";
    }
    if (state.exceeded !== null) throw new Error("evaluation budget exceeded");
    return condition;
  },
);

/**
 * A copy of `parsed` whose every comprehension checks the budget once per iteration (its loop
 * condition wrapped in {@link budgetFunction}). The original is left as parsed: references and
 * messages keep using it.
 */
export function instrumentForBudget(parsed: ParsedExpr): ParsedExpr {
  const copy = structuredClone(parsed);
  const visit = (expr: Expr | undefined): void => {
    if (expr === undefined) return;
    const kind = expr.exprKind;
    switch (kind.case) {
      case "selectExpr":
        visit(kind.value.operand);
        return;
      case "callExpr":
        visit(kind.value.target);
        for (const arg of kind.value.args) visit(arg);
        return;
      case "listExpr":
        for (const element of kind.value.elements) visit(element);
        return;
      case "structExpr":
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === "mapKey") visit(entry.keyKind.value);
          visit(entry.value);
        }
        return;
      case "comprehensionExpr": {
        const c = kind.value;
        for (const part of [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result])
          visit(part);
        if (c.loopCondition !== undefined) c.loopCondition = budgetCall(c.loopCondition);
        return;
      }
      default:
        return;
    }
  };
  visit(copy.expr);
  return copy;
}

function budgetCall(condition: Expr): Expr {
  return {
    $typeName: "cel.expr.Expr",
    id: condition.id,
    exprKind: {
      case: "callExpr",
      value: {
        $typeName: "cel.expr.Expr.Call",
        function: BUDGET_FUNCTION,
        args: [condition],
      },
    },
  } as Expr;
}

/**
 * Runs `evaluate` under `budget`; returns its result and, when the budget ran out, which limit
 * (then the result must be discarded: some sub-expression was cut short).
 */
export function withBudget<T>(
  budget: EvaluationBudget,
  evaluate: () => T,
): { result: T; exceeded: string | null } {
  const outer = current;
  const state: BudgetState = {
    remaining: budget.maxIterations,
    deadline: performance.now() + budget.maxMs,
    exceeded: null,
  };
  current = state;
  try {
    const result = evaluate();
    return { result, exceeded: state.exceeded };
  } finally {
    current = outer;
  }
}
