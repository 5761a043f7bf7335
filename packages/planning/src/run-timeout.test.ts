import assert from "node:assert/strict";
import { describe, test } from "vitest";
import { PackValidationError, planPack } from "./index.ts";

const pack = (timeout: string) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: deadline, version: 1.0.0}
spec:
${timeout}  steps:
    - id: a
      run: {uses: builtin:noop}
`;

describe("spec.timeout (the run deadline)", () => {
  test("is planned as timeoutSeconds; absent without one, so such plans keep their hash", () => {
    const with90m = planPack(pack("  timeout: 1h30m\n"));
    assert.equal(with90m.plan.timeoutSeconds, 5400);
    assert.equal(planPack(pack("  timeout: 120\n")).plan.timeoutSeconds, 120);
    const without = planPack(pack(""));
    assert.equal("timeoutSeconds" in without.plan, false);
    assert.notEqual(with90m.planHash, without.planHash, "the deadline is part of the plan");
  });

  test("a malformed or non-positive deadline is refused naming spec.timeout", () => {
    for (const bad of ["soon", "0", "-5", "1.5h"]) {
      assert.throws(
        () => planPack(pack(`  timeout: ${bad}\n`)),
        (error: unknown) =>
          error instanceof PackValidationError &&
          error.diagnostics.some((d) => d.path === "spec.timeout"),
        bad,
      );
    }
  });
});
