import assert from "node:assert/strict";
import { describe, test } from "vitest";
import { planPack } from "./build-plan.ts";
import { PackValidationError } from "./diagnostic.ts";
import type { PlannedMapStep, PlannedRunStep } from "./plan-types.ts";
import { simulatePlan } from "./simulate.ts";

const pack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: image-scan
  version: 1.2.0
spec:
  inputs:
    - name: targets
      type: array
      required: true
      schema: {type: array, items: {type: string}, minItems: 1}
    - name: strict
      type: boolean
      default: false
    - name: note
      type: string
  secrets:
    - name: registryToken
  approvals:
    - {id: publish, grants: [security-lead], required: 2, expiresAfter: 1h30m}
  policies:
    - name: clean
      expression: "parameters.max >= 0"
  failure:
    retries: {maxAttempts: 3, backoffSeconds: 2, backoff: exponential, maxBackoffSeconds: 30}
  steps:
    - id: scan
      map:
        items: "{{ inputs.targets }}"
        maxParallel: 4
        step:
          id: scan-one
          timeout: 2m
          retries: {maxAttempts: 5, jitter: true}
          run:
            uses: builtin:shell
            with:
              argv: [trivy, image, "{{ item }}", --position, "{{ index }}"]
              env: {TOKEN: "{{ secrets.registryToken }}"}
    - id: gatekeeper
      gate: {policy: {policy: clean, parameters: {max: 0}}}
    - id: approve
      gate: {approval: {id: publish, message: "Publish?"}}
    - id: strict-only
      when: inputs.strict
      run: {uses: builtin:noop}
    - id: report
      when: "steps.scan.status == 'succeeded'"
      run:
        uses: builtin:shell
        with:
          argv: [report, "--summary={{ steps.scan.outputs.summary }}", "{{ inputs.note }}"]
  outputs:
    - {name: summary, type: object, expression: "{{ steps.report.outputs.summary }}"}
`;

const inputs = { targets: ["alpine:3.20", "debian:12"] };

describe("plan", () => {
  test("normalises defaults, retries, timeouts and approvals", () => {
    const { plan, summary } = planPack(pack, { inputs });
    assert.deepEqual(plan.inputs, {
      targets: ["alpine:3.20", "debian:12"],
      strict: false,
      note: null,
    });
    assert.deepEqual(plan.approvals, [
      {
        id: "publish",
        grants: ["security-lead"],
        required: 2,
        expiresAfterSeconds: 5400,
        reason: "",
      },
    ]);
    assert.deepEqual(plan.sandbox, { mode: "open", egressAllowlist: [] });
    const scan = plan.steps[0] as PlannedMapStep;
    assert.equal(scan.map.maxParallel, 4);
    assert.deepEqual(scan.failure, {
      maxAttempts: 3,
      backoffSeconds: 2,
      backoff: "exponential",
      maxBackoffSeconds: 30,
      jitter: 0,
    });
    const child = scan.map.steps[1] as PlannedRunStep;
    // Step retries override the pack's field by field.
    assert.deepEqual(child.failure, {
      maxAttempts: 5,
      backoffSeconds: 2,
      backoff: "exponential",
      maxBackoffSeconds: 30,
      jitter: 0.5,
    });
    assert.equal(child.timeoutSeconds, 120);
    assert.equal(summary.stepCount, 7);
    assert.deepEqual(summary.secretNames, ["registryToken"]);
  });

  test("expands maps with <mapId>[<index>]::<templateId> and binds item and index", () => {
    const scan = planPack(pack, { inputs }).plan.steps[0] as PlannedMapStep;
    assert.deepEqual(
      scan.map.steps.map((step) => step.id),
      ["scan[0]::scan-one", "scan[1]::scan-one"],
    );
    const second = scan.map.steps[1] as PlannedRunStep;
    assert.equal(second.parentId, "scan");
    // Module parameters are text: index 1 reaches argv as "1".
    assert.deepEqual(second.run.with.argv, ["trivy", "image", "debian:12", "--position", "1"]);
    // Secrets are never resolved at plan time.
    assert.deepEqual(second.run.with.env, { TOKEN: { $runtime: "{{ secrets.registryToken }}" } });
  });

  test("keeps what depends on earlier steps as run-time values", () => {
    const { plan } = planPack(pack, { inputs });
    const report = plan.steps[4] as PlannedRunStep;
    assert.deepEqual(report.enabled, { $runtime: "steps.scan.status == 'succeeded'" });
    assert.deepEqual(report.run.with.argv, [
      "report",
      { $runtime: "--summary={{ steps.scan.outputs.summary }}" },
      "null",
    ]);
    assert.deepEqual(plan.outputs[0]?.expression, {
      $runtime: "{{ steps.report.outputs.summary }}",
    });
  });

  test("evaluates plan-time when conditions", () => {
    const off = planPack(pack, { inputs }).plan.steps[3];
    assert.equal(off?.enabled, false);
    assert.equal(off?.skipReason, "when `inputs.strict` is false");
    assert.equal(
      planPack(pack, { inputs: { ...inputs, strict: true } }).plan.steps[3]?.enabled,
      true,
    );
  });

  test("map items known only at run time leave the map unexpanded", () => {
    const text = pack
      .replace('items: "{{ inputs.targets }}"', 'items: "{{ steps.discover.outputs.images }}"')
      .replace(
        "  steps:\n    - id: scan",
        "  steps:\n    - id: discover\n      run: {uses: builtin:noop}\n    - id: scan",
      );
    const scan = planPack(text, { inputs }).plan.steps[1] as PlannedMapStep;
    assert.deepEqual(scan.map.items, { $runtime: "{{ steps.discover.outputs.images }}" });
    assert.deepEqual(scan.map.steps, []);
    assert.equal(scan.map.templateId, "scan-one");
  });
});

describe("inputs and secrets", () => {
  function failure(run: () => unknown): string[] {
    try {
      run();
    } catch (error) {
      if (error instanceof PackValidationError)
        return error.diagnostics.map((d) => `${d.code} ${d.path}: ${d.message}`);
      throw error;
    }
    return [];
  }

  test("a missing required input names the input and its declaration line", () => {
    const found = failure(() => planPack(pack, {}));
    assert.deepEqual(found, ['INPUT_MISSING inputs.targets: required input "targets" is missing']);
    try {
      planPack(pack, {});
    } catch (error) {
      assert.equal((error as PackValidationError).diagnostics[0]?.line, 8);
    }
  });

  test("values are checked against type and JSON Schema; unknown inputs are refused", () => {
    const found = failure(() =>
      planPack(pack, { inputs: { targets: [], strict: "yes", extra: 1 } }),
    );
    assert.deepEqual(found.sort(), [
      'INPUT_INVALID inputs.strict: input "strict" must be a boolean, got string',
      'INPUT_INVALID inputs.targets: input "targets" does not match its schema: value must NOT have fewer than 1 items',
      'INPUT_UNKNOWN inputs.extra: input "extra" is not declared by the pack (declared: targets, strict, note)',
    ]);
  });

  test("supplied secrets must match the declarations", () => {
    assert.deepEqual(
      failure(() => planPack(pack, { inputs, suppliedSecretNames: ["registryToken"] })),
      [],
    );
    assert.deepEqual(
      failure(() => planPack(pack, { inputs, suppliedSecretNames: ["other"] })).sort(),
      [
        'SECRET_MISSING secrets.registryToken: secret "registryToken" is declared but not supplied',
        'SECRET_UNDECLARED secrets.other: secret "other" is not declared by the pack',
      ],
    );
  });

  test("map items that are not a list are refused at plan time", () => {
    const text = pack.replace(
      "type: array\n      required: true\n      schema: {type: array, items: {type: string}, minItems: 1}",
      "type: string\n      required: true",
    );
    assert.deepEqual(
      failure(() => planPack(text, { inputs: { targets: "alpine" } })),
      ["PACK_EXPRESSION spec.steps[0].map.items: map items must evaluate to a list; got string"],
    );
  });

  test("evaluation errors are located", () => {
    const text = pack.replace("when: inputs.strict", "when: inputs.strict + 1");
    const found = failure(() => planPack(text, { inputs }));
    assert.equal(found.length, 1);
    assert.match(
      found[0] ?? "",
      /^PACK_EXPRESSION spec.steps\[3\].when: `inputs.strict \+ 1` failed: /,
    );
  });

  test("a map that expands past the planned-step limit is refused", () => {
    const many = Array.from({ length: 40 }, (_, i) => `img${i}`);
    const found = failure(() =>
      planPack(pack, { inputs: { targets: many }, limits: { maxPlannedSteps: 20 } }),
    );
    assert.deepEqual(found, [
      "PACK_LIMIT spec.steps: the plan has more than 20 steps after map expansion",
    ]);
  });
});

describe("planHash", () => {
  test("is sha256 over canonical JSON and independent of YAML formatting", () => {
    const first = planPack(pack, { inputs });
    assert.match(first.planHash, /^sha256:[0-9a-f]{64}$/);
    const reformatted = pack
      .replace(
        "kind: TaskPack\nmetadata:\n  name: image-scan\n  version: 1.2.0\n",
        "metadata: {version: 1.2.0, name: image-scan}   # reordered\nkind: TaskPack\n",
      )
      .replace(
        "  secrets:\n    - name: registryToken\n",
        "  # a comment\n  secrets: [{name: registryToken}]\n",
      );
    assert.notEqual(reformatted, pack);
    const second = planPack(reformatted, { inputs: { targets: ["alpine:3.20", "debian:12"] } });
    assert.equal(second.planHash, first.planHash);
    assert.equal(second.planJson, first.planJson);
    assert.notEqual(
      second.summary.packDigest,
      first.summary.packDigest,
      "the pack digest covers the exact bytes",
    );
  });

  test("changes with any semantic change", () => {
    const base = planPack(pack, { inputs }).planHash;
    const variants = [
      planPack(pack, { inputs: { targets: ["alpine:3.20"] } }),
      planPack(pack, { inputs: { ...inputs, strict: true } }),
      planPack(pack.replace("maxParallel: 4", "maxParallel: 3"), { inputs }),
      planPack(pack.replace("timeout: 2m", "timeout: 3m"), { inputs }),
      planPack(pack.replace("required: 2", "required: 3"), { inputs }),
      planPack(pack.replace("version: 1.2.0", "version: 1.2.1"), { inputs }),
    ].map((result) => result.planHash);
    assert.equal(new Set([base, ...variants]).size, variants.length + 1);
  });

  test("plan JSON is canonical: sorted keys, no whitespace", () => {
    const { planJson } = planPack(pack, { inputs });
    assert.ok(planJson.startsWith('{"approvals":[{"expiresAfterSeconds":5400,'));
    assert.ok(!/\s"|":\s/.test(planJson));
  });
});

describe("simulate", () => {
  test("classifies every step with reasons, children included", () => {
    const simulation = simulatePlan(planPack(pack, { inputs }));
    const flat = simulation.steps.map((step) => [step.id, step.status, step.children.length]);
    assert.deepEqual(flat, [
      ["scan", "pending", 2],
      ["gatekeeper", "requires-policy", 0],
      ["approve", "requires-approval", 0],
      ["strict-only", "skipped", 0],
      ["report", "pending", 0],
    ]);
    assert.equal(simulation.steps[0]?.children[0]?.id, "scan[0]::scan-one");
    assert.equal(simulation.steps[0]?.children[0]?.runtimeDependent, true);
    assert.equal(
      simulation.steps[2]?.reason,
      'needs 2 approvals "publish" holding security-lead: Publish?',
    );
    assert.equal(simulation.steps[3]?.reason, "when `inputs.strict` is false");
    assert.match(
      simulation.steps[4]?.reason ?? "",
      /runs only if `steps.scan.status == 'succeeded'` holds at run time/,
    );
    assert.deepEqual(
      simulation.outputs.map((output) => output.name),
      ["summary"],
    );
  });

  test("children of a skipped step are skipped with the parent as reason", () => {
    const text = pack.replace(
      "    - id: scan\n      map:",
      "    - id: scan\n      when: inputs.strict\n      map:",
    );
    const scan = simulatePlan(planPack(text, { inputs })).steps[0];
    assert.equal(scan?.status, "skipped");
    assert.equal(scan?.children[0]?.status, "skipped");
    assert.equal(scan?.children[0]?.reason, 'parent step "scan" is skipped');
  });
});

describe("data never becomes structure", () => {
  const forge = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: forge, version: 1.0.0}
spec:
  inputs: [{name: o, type: object}, {name: list, type: array, default: [a, b]}]
  secrets: [{name: token}]
  steps:
    - id: a
      run:
        uses: builtin:shell
        with: {argv: [echo, "{{ inputs.o }}", "{{ inputs.list }}"], env: {T: "{{ secrets.token }}"}}
`;

  test("an input cannot smuggle a run-time value (and so a secret) into argv", () => {
    assert.throws(
      () => planPack(forge, { inputs: { o: { $runtime: "{{ secrets.token }}" } } }),
      (error: PackValidationError) => {
        assert.equal(error.diagnostics[0]?.code, "INPUT_INVALID");
        assert.match(error.message, /reserved key "\$runtime"/);
        return true;
      },
    );
  });

  test("lists and objects reach module parameters as JSON text", () => {
    const step = planPack(forge, { inputs: { o: { k: [1, true] } } }).plan
      .steps[0] as PlannedRunStep;
    assert.deepEqual(step.run.with.argv, ["echo", '{"k":[1,true]}', '["a","b"]']);
  });

  test("a map item list with run-time elements is refused with a way out", () => {
    const text = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: mixed, version: 1.0.0}
spec:
  steps:
    - id: first
      run: {uses: builtin:noop}
    - id: m
      map:
        items: [a, "{{ steps.first.outputs.x }}"]
        step: {id: one, run: {uses: builtin:noop}}
`;
    assert.throws(() => planPack(text), /write the whole list as one expression/);
  });

  test("supplied null means not given", () => {
    const plan = planPack(forge, { inputs: { o: null, list: null } }).plan;
    assert.deepEqual(plan.inputs, { o: null, list: ["a", "b"] });
  });
});
