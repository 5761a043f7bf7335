import assert from "node:assert/strict";
import { test } from "vitest";
import { CliError } from "./cli-error.ts";
import { parseInputAssignment, readInputs } from "./read-inputs.ts";

test("--input values are parsed as JSON when they are JSON, else kept as strings", () => {
  assert.deepEqual(parseInputAssignment("count=3"), ["count", 3]);
  assert.deepEqual(parseInputAssignment("debug=true"), ["debug", true]);
  assert.deepEqual(parseInputAssignment('tags=["a","b"]'), ["tags", ["a", "b"]]);
  assert.deepEqual(parseInputAssignment('cfg={"k":1}'), ["cfg", { k: 1 }]);
  assert.deepEqual(parseInputAssignment('version="1.10"'), ["version", "1.10"]);
  assert.deepEqual(parseInputAssignment("image=nginx:1.27"), ["image", "nginx:1.27"]);
  assert.deepEqual(parseInputAssignment("expr=a=b"), ["expr", "a=b"]);
  assert.deepEqual(parseInputAssignment("empty="), ["empty", ""]);
});

test("--input without a name is rejected with exit code 2", () => {
  for (const bad of ["novalue", "=3", " =x"]) {
    assert.throws(
      () => parseInputAssignment(bad),
      (error: unknown) => error instanceof CliError && error.exitCode === 2,
    );
  }
});

test("later --input flags win and __proto__ stays a plain own key", async () => {
  const { values, sources } = await readInputs({
    inputsFile: undefined,
    assignments: ["a=1", "a=2", '__proto__={"polluted":true}'],
  });
  assert.equal(values.a, 2);
  assert.ok(Object.hasOwn(values, "__proto__"));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(sources.get("a"), "--input a");
});
