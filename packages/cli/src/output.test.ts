import assert from "node:assert/strict";
import { test } from "vitest";
import { formatDuration } from "./format-duration.ts";
import { renderFields, renderTable } from "./output.ts";
import { printable } from "./printable.ts";

test("renderTable aligns columns and leaves no trailing blanks", () => {
  const table = renderTable(
    ["STEP", "STATUS", "REASON"],
    [
      ["a-long-step", "pending", ""],
      ["b", "skipped", "why"],
    ],
  );
  assert.equal(
    table,
    "STEP         STATUS   REASON\na-long-step  pending\nb            skipped  why\n",
  );
});

test("renderFields aligns values", () => {
  assert.equal(
    renderFields([
      ["Pack", "x@1"],
      ["Plan hash", "h"],
    ]),
    "Pack:       x@1\nPlan hash:  h\n",
  );
});

test("printable escapes control characters so a manifest cannot drive the terminal", () => {
  assert.equal(printable("ok"), "ok");
  assert.equal(printable("a\nb\tc"), "a\\nb\\tc");
  assert.equal(printable("\u001b[2J"), "\\u001b[2J");
  assert.equal(printable("\u009b"), "\\u009b");
});

test("formatDuration is compact", () => {
  assert.equal(formatDuration(null), "never");
  assert.equal(formatDuration(45), "45s");
  assert.equal(formatDuration(90), "1m30s");
  assert.equal(formatDuration(86_400), "1d");
  assert.equal(formatDuration(93_600), "1d2h");
});
