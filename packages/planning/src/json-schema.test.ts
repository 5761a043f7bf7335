import assert from "node:assert/strict";
import { test } from "vitest";
import { compileInputSchema } from "./json-schema.ts";

test("a pack's `pattern` runs in linear time: no catastrophic backtracking (ReDoS)", () => {
  const validate = compileInputSchema({ type: "string", pattern: "^(a+)+$" });
  for (const length of [40, 5000, 100_000]) {
    const started = performance.now();
    assert.equal(validate(`${"a".repeat(length)}b`), false);
    const ms = performance.now() - started;
    assert.ok(ms < 1000, `${length} characters took ${Math.round(ms)} ms`);
  }
  assert.equal(validate("aaaa"), true);
});

test("patterns keep JSON Schema's meaning: unanchored search, Unicode, patternProperties", () => {
  const validate = compileInputSchema({
    type: "object",
    properties: { tag: { type: "string", pattern: "[0-9]+\\.[0-9]+" } },
    patternProperties: { "^x-": { type: "string" } },
  });
  assert.equal(validate({ tag: "release-1.2" }), true);
  assert.equal(validate({ tag: "latest" }), false);
  assert.equal(validate({ "x-note": 3 }), false);
  assert.equal(compileInputSchema({ type: "string", pattern: "^\\p{L}+$" })("héllo"), true);
});

test("lookaround and backreferences (not linear-time) are refused with a clear message", () => {
  assert.throws(() => compileInputSchema({ type: "string", pattern: "^(?!admin).*$" }), {
    message: /not a supported regular expression \(RE2 syntax/,
  });
  assert.throws(() => compileInputSchema({ type: "string", pattern: "(a)\\1" }), {
    message: /RE2 syntax/,
  });
});
