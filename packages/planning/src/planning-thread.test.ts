/**
 * The planning threads' task function, run in this process: what each job answers, and how
 * refusals come back as data (the pool's tests run the same function in real threads).
 */
import assert from "node:assert/strict";
import { test } from "vitest";
import type { PlannedStep } from "./plan-types.ts";
import type { PlanningJob } from "./planning-task.ts";
import runPlanningTask from "./planning-thread.ts";

const manifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: threaded, version: 2.0.0}
spec:
  inputs: [{name: who, type: string}]
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {argv: [echo, "{{ inputs.who }}"]}}
`;

function run(job: PlanningJob) {
  const started = new SharedArrayBuffer(4);
  const result = runPlanningTask({ job, started });
  // The thread flags its start, which is when the pool starts its clock.
  assert.equal(Atomics.load(new Int32Array(started), 0), 1);
  return result;
}

const step = (value: unknown) => ({ $runtime: value as string });

test("plan and inspect answer with plain data", () => {
  const planned = run({ kind: "plan", text: manifest, options: { inputs: { who: "x" } } });
  assert.ok(planned.ok && planned.kind === "plan");
  assert.match(planned.planned.planHash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(planned.planned.summary.packName, "threaded");
  const inspected = run({ kind: "inspect", text: manifest });
  assert.deepEqual(inspected, {
    ok: true,
    kind: "inspect",
    metadata: { name: "threaded", version: "2.0.0" },
  });
});

test("run-time evaluations: a when, resolved templates, a policy expression, a map expansion", () => {
  const bindings = { inputs: { n: 2 }, steps: { a: { outputs: { v: "7" }, status: "succeeded" } } };
  assert.deepEqual(run({ kind: "evaluate", value: step("inputs.n > 1"), bindings }), {
    ok: true,
    kind: "value",
    value: true,
  });
  assert.deepEqual(
    run({
      kind: "resolve",
      value: { argv: ["echo", step("{{ steps.a.outputs.v }}")], n: step("{{ inputs.n }}") },
      bindings,
      text: true,
    }),
    { ok: true, kind: "value", value: { argv: ["echo", "7"], n: "2" } },
  );
  assert.deepEqual(run({ kind: "expression", source: "inputs.n * 3", bindings }), {
    ok: true,
    kind: "value",
    value: 6,
  });
  const template = {
    id: "child",
    name: "child",
    parentId: null,
    enabled: true,
    skipReason: null,
    kind: "noop",
  } as unknown as PlannedStep;
  const expanded = run({
    kind: "expand",
    template,
    mapId: "fan",
    items: ["x", "y"],
    inputs: {},
  });
  assert.ok(expanded.ok && expanded.kind === "value");
  assert.deepEqual(
    (expanded.value as { id: string }[]).map((child) => child.id),
    ["fan[0]::child", "fan[1]::child"],
  );
});

test("refusals come back as data: diagnostics, an expression error, a packrun error", () => {
  const invalid = run({ kind: "inspect", text: "kind: [" });
  assert.ok(!invalid.ok && invalid.kind === "validation");
  assert.equal(invalid.diagnostics[0]?.code, "PACK_YAML_SYNTAX");
  const unknownInput = run({ kind: "plan", text: manifest, options: { inputs: { nope: 1 } } });
  assert.ok(!unknownInput.ok && unknownInput.kind === "validation");
  assert.ok(unknownInput.diagnostics.some((d) => d.code === "INPUT_UNKNOWN"));
  const broken = run({
    kind: "expression",
    source: "inputs.missing.deeper",
    bindings: { inputs: {} },
  });
  assert.ok(!broken.ok && broken.kind === "expression", JSON.stringify(broken));
  assert.match(broken.message, /inputs\.missing\.deeper/);
  const tooLarge = run({
    kind: "inspect",
    text: manifest,
    limits: { maxBytes: 10 },
  });
  assert.ok(!tooLarge.ok, JSON.stringify(tooLarge));
  const code =
    tooLarge.kind === "validation"
      ? tooLarge.diagnostics[0]?.code
      : tooLarge.kind === "packrun"
        ? tooLarge.code
        : "";
  assert.equal(code, "PACK_TOO_LARGE");
});
