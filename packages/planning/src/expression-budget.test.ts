import assert from "node:assert/strict";
import { test } from "vitest";
import { ExpressionError, evaluateExpression, parseExpression } from "./expression.ts";

const xs = Array.from({ length: 1000 }, (_, i) => i);

function refusal(source: string, bindings: Record<string, unknown>): string {
  try {
    evaluateExpression(parseExpression(source), bindings);
  } catch (error) {
    assert.ok(error instanceof ExpressionError, String(error));
    return error.message;
  }
  assert.fail(`${source} was evaluated`);
}

test("three nested comprehensions over 1,000 items are refused fast, naming the expression", () => {
  const source = "inputs.xs.all(a, inputs.xs.all(b, inputs.xs.all(c, true)))";
  const started = performance.now();
  const message = refusal(source, { inputs: { xs } });
  assert.ok(performance.now() - started < 1_000, "refused within a second");
  assert.ok(message.includes(source), message);
  assert.match(message, /evaluation budget of 100000 comprehension iterations/);
});

test("an error absorbed by || or && still refuses the expression", () => {
  const message = refusal("inputs.xs.all(a, inputs.xs.all(b, true)) || true", { inputs: { xs } });
  assert.match(message, /evaluation budget/);
});

test("map and filter count too; the budget can be set per call", () => {
  const expression = parseExpression("inputs.xs.map(x, x * 2).filter(x, x > 10).size()");
  assert.equal(evaluateExpression(expression, { inputs: { xs } }), 994);
  assert.throws(
    () => evaluateExpression(expression, { inputs: { xs } }, { maxIterations: 1500, maxMs: 1000 }),
    /evaluation budget of 1500/,
  );
});

test("the time limit stops a long evaluation", () => {
  const expression = parseExpression("inputs.xs.all(a, inputs.xs.all(b, true))");
  assert.throws(
    () => evaluateExpression(expression, { inputs: { xs } }, { maxIterations: 1e9, maxMs: 5 }),
    /evaluation budget of 5 ms/,
  );
});
