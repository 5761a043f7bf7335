/**
 * Issue 19, break 2: CEL had no cost limit. `inputs.xs.all(a, inputs.xs.all(b, inputs.xs.all(c,
 * true)))` over 1,000 items (10^9 iterations) froze the planner for 115 s, and with it every
 * tenant's planning.
 *
 * Now every evaluation has a budget of comprehension iterations and of time: such an expression
 * fails in well under a second with PACK_EXPRESSION naming the expression and where it is, the
 * service stays responsive, and ordinary comprehensions over the same input still work.
 */
import assert from "node:assert/strict";
import { test } from "vitest";
import { manifest, timed, useSecurityStack } from "./support/stack.ts";

/** 500 items: 1.25 * 10^8 iterations nested three deep (about 15 s before the fix). */
const xs = Array.from({ length: 500 }, (_, i) => `item-${i}`);

const cubic = "inputs.xs.all(a, inputs.xs.all(b, inputs.xs.all(c, true)))";

function pack(when: string): string {
  return manifest(
    "cel-cost",
    `  inputs: [{name: xs, type: array}]
  steps:
    - id: guarded
      when: ${JSON.stringify(when)}
      run: {uses: builtin:noop}
`,
  );
}

const ctx = useSecurityStack();

interface Problem {
  code: string;
  detail: string;
  errors?: { path: string; message: string; line?: number }[];
}

test("a cubic comprehension over 500 items fails fast, naming the expression and its location", async () => {
  for (const path of ["/api/simulations", "/api/runs"]) {
    const { ms, value: response } = await timed(() =>
      ctx.alice.post<Problem>(path, { manifest: pack(cubic), inputs: { xs } }),
    );
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.code, "PACK_EXPRESSION");
    const error = response.body.errors?.find((e) => e.path.includes("when"));
    assert.ok(error !== undefined, JSON.stringify(response.body));
    assert.equal(error.path, "spec.steps[0].when");
    assert.ok(error.line !== undefined && error.line > 0, JSON.stringify(error));
    assert.ok(error.message.includes(cubic), error.message);
    assert.match(error.message, /evaluation budget/);
    assert.ok(ms < 3_000, `${path} answered after ${Math.round(ms)} ms`);
  }
});

test("the planner stays responsive while such expressions are refused", async () => {
  const attacks = Array.from({ length: 3 }, () =>
    ctx.alice.post("/api/simulations", { manifest: pack(cubic), inputs: { xs } }),
  );
  const { ms } = await timed(async () => {
    const ok = await ctx.alice.post("/api/simulations", {
      manifest: pack("inputs.xs.all(x, x != '')"),
      inputs: { xs },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
  await Promise.all(attacks);
  assert.ok(ms < 5_000, `an ordinary simulation took ${Math.round(ms)} ms`);
});

test("ordinary comprehensions over the same input still evaluate", async () => {
  const response = await ctx.alice.post<{ steps: { id: string; enabled?: unknown }[] }>(
    "/api/simulations",
    {
      manifest: pack(
        "inputs.xs.exists(x, x == 'item-499') && inputs.xs.map(x, x + '!').size() == 500",
      ),
      inputs: { xs },
    },
  );
  assert.equal(response.status, 200, JSON.stringify(response.body));
});
