import assert from "node:assert/strict";
import { test } from "vitest";
import { planPack } from "./build-plan.ts";
import type { PlannedMapStep } from "./plan-types.ts";
import { expandMapTemplate, resolveRuntimeValues, runtimeReferences } from "./runtime-values.ts";

const pack = (items: string) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: fan-out, version: 1.0.0}
spec:
  inputs:
    - {name: images, type: array, default: ["alpine:3", "debian:12"]}
    - {name: mode, type: string, default: fast}
  secrets: [{name: token}]
  steps:
    - id: discover
      run: {uses: builtin:noop}
    - id: scan
      map:
        items: "${items}"
        step:
          id: one
          when: "index < 1"
          run:
            uses: builtin:shell
            with:
              argv: [scan, "{{ item }}", "--n={{ index }}", "{{ inputs.mode }}", "{{ steps.discover.outputs.x }}"]
              env: {TOKEN: "{{ secrets.token }}"}
`;

test("expanding a run-time map template gives exactly the children the planner would", () => {
  const known = planPack(pack("{{ inputs.images }}")).plan.steps[1] as PlannedMapStep;
  const runtime = planPack(pack("{{ steps.discover.outputs.images }}")).plan
    .steps[1] as PlannedMapStep;
  assert.equal(known.map.template, null);
  assert.ok(runtime.map.template !== null);
  const inputs = { images: ["alpine:3", "debian:12"], mode: "fast" };
  const expanded = ["alpine:3", "debian:12"].map((item, index) =>
    expandMapTemplate(
      runtime.map.template as NonNullable<typeof runtime.map.template>,
      "scan",
      index,
      item,
      inputs,
    ),
  );
  assert.deepEqual(expanded, known.map.steps);
});

test("run-time values resolve against step outputs and secrets", () => {
  const runtime = planPack(pack("{{ inputs.images }}")).plan.steps[1] as PlannedMapStep;
  const child = runtime.map.steps[0];
  assert.ok(child?.kind === "run");
  const refs = runtimeReferences(child.run.with).map((ref) => `${ref.root}.${ref.path.join(".")}`);
  assert.deepEqual(refs.sort(), ["secrets.token", "steps.discover.outputs.x"]);
  const resolved = resolveRuntimeValues(child.run.with, {
    steps: { discover: { outputs: { x: "42" }, status: "succeeded" } },
    secrets: { token: "s3cr3t" },
  });
  assert.deepEqual(resolved, {
    argv: ["scan", "alpine:3", "--n=0", "fast", "42"],
    env: { TOKEN: "s3cr3t" },
  });
});
