import assert from "node:assert/strict";
import { test } from "vitest";
import type { Run, Step } from "./api-types.ts";
import { formatElapsed } from "./format-duration.ts";
import { fitLine, ProgressView } from "./progress-view.ts";
import {
  pendingGateLines,
  renderProgress,
  resultLines,
  stateChangeLines,
  stepDepths,
} from "./run-progress.ts";

const t0 = Date.parse("2026-01-01T12:00:00.000Z");
const at = (ms: number) => new Date(t0 + ms).toISOString();

function step(id: string, fields: Partial<Step> = {}): Step {
  return {
    id,
    kind: "run",
    state: "pending",
    attempt: 0,
    maxAttempts: 3,
    attempts: [],
    ...fields,
  };
}

function run(steps: Step[], fields: Partial<Run> = {}): Run {
  return {
    id: "run-1",
    pack: { name: "demo", version: "1.0.0", digest: "sha256:d" },
    planHash: "sha256:p",
    state: "running",
    priority: 0,
    createdAt: at(0),
    startedAt: at(0),
    submittedBy: "alice",
    labels: {},
    steps,
    gates: [],
    pendingGates: [],
    ...fields,
  };
}

const gated = run(
  [
    step("build", {
      state: "succeeded",
      attempt: 1,
      startedAt: at(0),
      finishedAt: at(1500),
      durationMs: 1500,
    }),
    step("release", { kind: "approval-gate", state: "awaiting-approval", maxAttempts: 0 }),
    step("deploy"),
  ],
  {
    state: "awaiting-approval",
    pendingGates: ["ship"],
    gates: [
      {
        stepId: "release",
        gateId: "ship",
        kind: "approval",
        state: "awaiting-approval",
        requiredApprovals: 2,
        grants: ["release-managers"],
        decisions: [{ approver: "bob", approved: true }],
        message: "ship it?",
      },
    ],
  },
);

test("formatElapsed shows tenths below a minute, then minutes and hours", () => {
  assert.equal(formatElapsed(undefined), "");
  assert.equal(formatElapsed(0), "0.0s");
  assert.equal(formatElapsed(1_549), "1.5s");
  assert.equal(formatElapsed(65_000), "1m05s");
  assert.equal(formatElapsed(2 * 3_600_000 + 3 * 60_000), "2h03m");
});

test("the live view has one line per step: id, state, attempt/max, duration", () => {
  const lines = renderProgress(
    run([
      step("build", { state: "succeeded", attempt: 1, durationMs: 1_500 }),
      step("test", { state: "running", attempt: 2, startedAt: at(10_000) }),
      step("fan-out", { kind: "map", maxAttempts: 1, state: "running" }),
      step("flaky", { nextAttemptAt: at(20_000), reason: "exit 1", attempt: 1 }),
      // The API lists children after the top-level steps; the view puts them under their parent.
      step("fan-out[0]", { parentId: "fan-out" }),
    ]),
    t0 + 12_300,
  );
  assert.deepEqual(lines, [
    "run run-1  demo@1.0.0  running  12.3s",
    "STEP          STATE      ATTEMPT  TIME  NOTE",
    "build         succeeded  1/3      1.5s",
    "test          running    2/3      2.3s",
    "fan-out       running",
    "  fan-out[0]  pending    0/3",
    "flaky         pending    1/3            retry in 7.7s: exit 1",
  ]);
});

test("pending gates come with the exact approve command", () => {
  assert.deepEqual(pendingGateLines(gated), [
    "approval required: gate ship (step release, 1/2 approvals, grants: release-managers): ship it?",
    "  approve: packrun approve run-1 ship",
    "  reject:  packrun approve run-1 ship --reject",
  ]);
  const lines = renderProgress(gated, t0 + 2_000);
  assert.equal(lines.at(-2), "  approve: packrun approve run-1 ship");
});

test("a big graph is cut to the height, keeping the steps that matter", () => {
  const steps = Array.from({ length: 50 }, (_, index) =>
    step(`s${index}`, { state: index === 30 ? "failed" : index < 30 ? "succeeded" : "pending" }),
  );
  const lines = renderProgress(run(steps), t0, 10);
  assert.ok(lines.length <= 10, lines.join("\n"));
  assert.ok(lines.some((line) => line.startsWith("s30 ")));
  assert.equal(lines.at(-1), "… 50 steps: 30 succeeded, 1 failed, 19 pending");
});

test("the plain view appends only changes", () => {
  const first = run([
    step("build", { state: "running", attempt: 1, startedAt: at(0) }),
    step("deploy"),
  ]);
  assert.deepEqual(stateChangeLines(undefined, first, t0 + 1_000), [
    "12:00:01 run run-1 running",
    "12:00:01 step build running (attempt 1/3, 1.0s)",
  ]);
  assert.deepEqual(stateChangeLines(first, first, t0 + 2_000), []);
  const retried = run([
    step("build", { state: "running", attempt: 2, startedAt: at(3_000) }),
    step("deploy"),
  ]);
  assert.deepEqual(stateChangeLines(first, retried, t0 + 4_000), [
    "12:00:04 step build running (attempt 2/3, 1.0s)",
  ]);
  const gateLines = stateChangeLines(retried, gated, t0 + 5_000);
  assert.ok(gateLines.includes("12:00:05 run run-1 awaiting-approval"), gateLines.join("\n"));
  assert.ok(gateLines.includes("12:00:05   approve: packrun approve run-1 ship"));
  // A gate already announced is not announced again.
  assert.equal(
    stateChangeLines(gated, gated, t0 + 6_000).filter((line) => line.includes("approve")).length,
    0,
  );
});

test("step ids and reasons cannot drive the terminal", () => {
  const lines = renderProgress(
    run([step("evil\u001b[2J", { state: "failed", reason: "bad\nline" })]),
    t0,
  );
  assert.ok(lines.every((line) => !line.includes("\u001b")));
  assert.ok(lines.some((line) => line.includes("evil\\u001b[2J") && line.includes("bad\\nline")));
});

test("the result lines name failed steps and how to see their logs", () => {
  const failed = run(
    [
      step("ok", { state: "succeeded", attempt: 1 }),
      step("broken", { state: "failed", attempt: 3, exitCode: 3, reason: "exit code 3" }),
    ],
    { state: "failed", reason: "step broken failed", finishedAt: at(4_000) },
  );
  assert.deepEqual(resultLines(failed, t0), [
    "  step broken failed (exit 3): exit code 3",
    "    logs: packrun logs run-1 --step broken",
  ]);
  assert.deepEqual(resultLines({ ...failed, state: "succeeded", steps: [] }, t0), [
    "run run-1 succeeded in 4.0s",
  ]);
});

test("stepDepths follows parents and survives a cycle", () => {
  const depths = stepDepths([
    step("a"),
    step("b", { parentId: "a" }),
    step("c", { parentId: "b" }),
    step("x", { parentId: "y" }),
    step("y", { parentId: "x" }),
  ]);
  assert.deepEqual(
    [...depths],
    [
      ["a", 0],
      ["b", 1],
      ["c", 2],
      ["x", 2],
      ["y", 2],
    ],
  );
});

test("the terminal view redraws in place and never wraps", () => {
  let out = "";
  const view = new ProgressView({
    write: (text: string) => {
      out += text;
    },
    isTTY: true,
    columns: 30,
    rows: 24,
  });
  assert.equal(view.interactive, true);
  const current = run([step("a-rather-long-step-name-that-would-wrap", { state: "running" })]);
  view.update(current, t0);
  const firstLines = out.split("\n").length - 1;
  assert.ok(out.startsWith("\u001b[J"), JSON.stringify(out));
  for (const line of out.split("\n")) assert.ok([...line.replace("\u001b[J", "")].length <= 29);
  out = "";
  view.update(current, t0 + 1_000);
  assert.ok(out.startsWith(`\u001b[${firstLines}F\u001b[J`), JSON.stringify(out));
  assert.equal(fitLine("abcdef", 4), "abc…");
  assert.equal(fitLine("abc", 4), "abc");
});

test("the plain view writes change lines only", () => {
  let out = "";
  const view = new ProgressView({
    write: (text: string) => {
      out += text;
    },
  });
  const current = run([step("a", { state: "running", attempt: 1 })]);
  view.update(current, t0);
  view.update(current, t0 + 1_000);
  view.redraw(t0 + 2_000);
  assert.equal(out, "12:00:00 run run-1 running\n12:00:00 step a running (attempt 1/3)\n");
});
