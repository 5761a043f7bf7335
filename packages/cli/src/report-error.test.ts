import assert from "node:assert/strict";
import { PackrunError } from "@packrun/errors";
import { afterEach, test } from "vitest";
import { CliError } from "./cli-error.ts";
import { reportError } from "./report-error.ts";

const saved = process.env.PACKRUN_DEBUG;
afterEach(() => {
  if (saved === undefined) delete process.env.PACKRUN_DEBUG;
  else process.env.PACKRUN_DEBUG = saved;
});

function capture(error: unknown): { code: number; text: string } {
  let text = "";
  const code = reportError(error, (chunk) => {
    text += chunk;
  });
  return { code, text };
}

test("an unexpected error is one line and exit 1, without a stack", () => {
  delete process.env.PACKRUN_DEBUG;
  const { code, text } = capture(new Error("boom\nsecond line"));
  assert.equal(code, 1);
  assert.equal(text, "error: unexpected failure: boom (set PACKRUN_DEBUG=1 for details)\n");
});

test("PACKRUN_DEBUG=1 adds the stack", () => {
  process.env.PACKRUN_DEBUG = "1";
  const { code, text } = capture(new Error("boom"));
  assert.equal(code, 1);
  assert.match(text, /^error: unexpected failure: boom\n/);
  assert.match(text, /\n\s+at /);
});

test("catalogued errors exit with their documented code", () => {
  delete process.env.PACKRUN_DEBUG;
  assert.equal(capture(new PackrunError("UNAUTHENTICATED", "no token")).code, 3);
  assert.equal(capture(new PackrunError("RUN_NOT_FOUND", "no run")).code, 4);
  assert.equal(capture(new PackrunError("UNAVAILABLE", "down")).code, 10);
  assert.equal(capture(new PackrunError("INPUT_MISSING", "x")).code, 2);
});

test("CliError prints its lines (or its message) and exits with its code", () => {
  delete process.env.PACKRUN_DEBUG;
  assert.deepEqual(capture(new CliError("bad file", 2)), { code: 2, text: "error: bad file\n" });
  assert.deepEqual(capture(new CliError("summary", 2, { lines: ["a: one", "a: two\u001b"] })), {
    code: 2,
    text: "a: one\na: two\\u001b\n",
  });
});
