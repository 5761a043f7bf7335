import assert from "node:assert/strict";
import { describe, test } from "vitest";
import { loadManifest } from "./build-plan.ts";
import { formatDiagnostic, PackValidationError } from "./diagnostic.ts";

const head = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: demo
  version: 1.0.0
`;

/** Validation diagnostics of `text` rendered one per line; [] when valid. */
function problems(text: string): string[] {
  try {
    loadManifest(text);
    return [];
  } catch (error) {
    if (!(error instanceof PackValidationError)) throw error;
    return error.diagnostics.map((d) => `${d.code} ${formatDiagnostic(d)}`);
  }
}

function expectProblem(text: string, expected: string | RegExp): void {
  const found = problems(text);
  const match = found.some((line) =>
    typeof expected === "string" ? line.includes(expected) : expected.test(line),
  );
  assert.ok(
    match,
    `expected a diagnostic matching ${String(expected)}; got:\n  ${found.join("\n  ") || "(none)"}`,
  );
}

describe("structure", () => {
  test("a minimal pack is valid", () => {
    assert.deepEqual(
      problems(`${head}spec:\n  steps:\n    - id: hello\n      run: {uses: builtin:noop}\n`),
      [],
    );
  });

  test("wrong apiVersion and kind", () => {
    const text = `apiVersion: v1\nkind: Pod\nmetadata: {name: x, version: 1.0.0}\nspec: {steps: [{id: a, run: {uses: builtin:noop}}]}\n`;
    expectProblem(text, 'PACK_SCHEMA apiVersion (line 1:13): must be "stellaops.io/pack.v1"');
    expectProblem(text, 'PACK_SCHEMA kind (line 2:7): must be "TaskPack"');
  });

  test("unknown fields are named at their key", () => {
    expectProblem(
      `${head}spec:\n  steps:\n    - id: a\n      runs: {uses: builtin:noop}\n`,
      'spec.steps[0].runs (line 9:7): unknown field "runs"',
    );
  });

  test("version must be semver", () => {
    expectProblem(
      `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: x, version: latest}\nspec: {steps: [{id: a, run: {uses: builtin:noop}}]}\n`,
      /metadata.version \(line 3:30\): "latest" is not a semantic version/,
    );
  });

  test("a step needs exactly one kind", () => {
    expectProblem(
      `${head}spec:\n  steps:\n    - id: a\n      name: nothing\n`,
      "spec.steps[0] (line 8:7): a step needs exactly one of run, parallel, map or gate",
    );
    expectProblem(
      `${head}spec:\n  steps:\n    - id: a\n      run: {uses: builtin:noop}\n      gate: {approval: {id: x}}\n`,
      "found run and gate",
    );
  });

  test("durations are checked", () => {
    expectProblem(
      `${head}spec:\n  steps:\n    - id: a\n      timeout: soon\n      run: {uses: builtin:noop}\n`,
      "spec.steps[0].timeout (line 9:16): must be a duration",
    );
  });
});

describe("ids", () => {
  test("duplicate ids point at both places", () => {
    const text = `${head}spec:\n  steps:\n    - id: a\n      run: {uses: builtin:noop}\n    - id: b\n      parallel:\n        steps:\n          - id: a\n            run: {uses: builtin:noop}\n`;
    expectProblem(
      text,
      'PACK_DUPLICATE_ID spec.steps[1].parallel.steps[0].id (line 13:17): step id "a" is already used at line 8:7',
    );
  });

  test("control characters in ids (YAML escapes) are named", () => {
    expectProblem(
      `${head}spec:\n  steps:\n    - id: "a\\0b"\n      run: {uses: builtin:noop}\n`,
      "step id contains control character U+0000",
    );
  });

  test("ids that could be confused with map child ids are refused", () => {
    expectProblem(
      `${head}spec:\n  steps:\n    - id: "a[0]::b"\n      run: {uses: builtin:noop}\n`,
      /must start with a letter/,
    );
  });
});

describe("references and expressions", () => {
  const steps = (body: string) =>
    `${head}spec:\n  inputs:\n    - {name: env, type: string, default: dev}\n  secrets:\n    - {name: token}\n  approvals:\n    - {id: release}\n  steps:\n${body}`;

  test("gates must reference declared approvals and policies", () => {
    expectProblem(
      steps("    - id: g\n      gate: {approval: {id: nope}}\n"),
      'approval "nope" is not declared',
    );
    expectProblem(
      steps("    - id: g\n      gate: {policy: {policy: nope}}\n"),
      'policy "nope" is not declared',
    );
  });

  test("unknown inputs, steps and names", () => {
    expectProblem(
      steps("    - id: a\n      when: inputs.region == 'eu'\n      run: {uses: builtin:noop}\n"),
      'unknown input "region"; declared inputs: env',
    );
    expectProblem(
      steps(
        "    - id: a\n      when: steps.ghost.status == 'succeeded'\n      run: {uses: builtin:noop}\n",
      ),
      'unknown step "ghost"',
    );
    expectProblem(
      steps("    - id: a\n      when: env == 'dev'\n      run: {uses: builtin:noop}\n"),
      'unknown name "env"',
    );
  });

  test("a step can only read steps in earlier top-level positions", () => {
    const body =
      "    - id: a\n      when: steps.b.status == 'succeeded'\n      run: {uses: builtin:noop}\n    - id: b\n      run: {uses: builtin:noop}\n";
    expectProblem(steps(body), 'step "b" does not finish before this point');
    const siblings =
      "    - id: p\n      parallel:\n        steps:\n          - id: x\n            run: {uses: builtin:noop}\n          - id: y\n            when: steps.x.status == 'succeeded'\n            run: {uses: builtin:noop}\n";
    expectProblem(steps(siblings), 'step "x" does not finish before this point');
  });

  test("secrets only in env", () => {
    expectProblem(
      steps(
        '    - id: a\n      run:\n        uses: builtin:shell\n        with: {argv: [echo, "{{ secrets.token }}"]}\n',
      ),
      "secrets can only be read in a run step's with.env values",
    );
    assert.deepEqual(
      problems(
        steps(
          '    - id: a\n      run:\n        uses: builtin:shell\n        with: {argv: [deploy], env: {TOKEN: "{{ secrets.token }}"}}\n',
        ),
      ),
      [],
    );
  });

  test("item and index only inside map templates", () => {
    expectProblem(
      steps(
        '    - id: a\n      run:\n        uses: builtin:shell\n        with: {argv: [echo, "{{ item }}"]}\n',
      ),
      '"item" is only defined inside a map step template',
    );
  });

  test("templates inside shell scripts are refused", () => {
    expectProblem(
      steps(
        '    - id: a\n      run:\n        uses: builtin:shell\n        with:\n          script: "echo {{ inputs.env }}"\n',
      ),
      "templates are not allowed inside a shell script",
    );
  });

  test("syntax errors in expressions are located", () => {
    expectProblem(
      steps("    - id: a\n      when: inputs.env ==\n      run: {uses: builtin:noop}\n"),
      /PACK_EXPRESSION spec.steps\[0\].when \(line 15:13\): cannot parse expression/,
    );
    expectProblem(
      steps(
        '    - id: a\n      run:\n        uses: builtin:shell\n        with: {argv: ["{{ inputs.env "]}\n',
      ),
      /unbalanced/,
    );
  });

  test("unknown modules and bad module parameters", () => {
    expectProblem(
      steps("    - id: a\n      run: {uses: builtin:teleport}\n"),
      'unknown module "builtin:teleport"',
    );
    expectProblem(
      steps("    - id: a\n      run: {uses: builtin:shell, with: {argv: [ls], script: ls}}\n"),
      "needs exactly one of argv or script",
    );
    expectProblem(
      steps("    - id: a\n      run: {uses: builtin:container, with: {command: [ls]}}\n"),
      'builtin:container: missing required field "image"',
    );
  });

  test("every problem is reported, not only the first", () => {
    const body =
      "    - id: a\n      when: nope.x\n      run: {uses: builtin:noop}\n    - id: a\n      gate: {approval: {id: ghost}}\n";
    const found = problems(steps(body));
    assert.equal(found.length, 3, found.join("\n"));
  });

  test("input defaults must match their declaration", () => {
    const text = `${head}spec:\n  inputs:\n    - {name: replicas, type: integer, default: many}\n  steps: [{id: a, run: {uses: builtin:noop}}]\n`;
    expectProblem(
      text,
      "spec.inputs[0].default (line 8:48): default must be an integer, got string",
    );
  });
});

describe("parameters that could escape", () => {
  const run = (body: string) => `${head}spec:\n  steps:\n    - id: a\n${body}`;

  test("bundle.ingest refuses traversal in sha256 and filename", () => {
    expectProblem(
      run("      run: {uses: builtin:bundle.ingest, with: {path: b.tgz, sha256: ../../etc}}\n"),
      "must be 64 lowercase hex characters",
    );
    expectProblem(
      run(
        `      run: {uses: builtin:bundle.ingest, with: {path: b.tgz, sha256: "${"a".repeat(64)}", filename: ../../x}}\n`,
      ),
      "must be a plain file name",
    );
  });

  test("artifacts stay inside the workdir and have unique names", () => {
    expectProblem(
      run(
        "      run: {uses: builtin:noop, artifacts: [{name: r, path: ../r.json}, {name: r, path: /etc/passwd}]}\n",
      ),
      "must be a relative path inside the step's workdir",
    );
    expectProblem(
      run("      run: {uses: builtin:noop, artifacts: [{name: r, path: a}, {name: r, path: b}]}\n"),
      'artifact "r" is declared twice',
    );
  });

  test("reserved environment variables", () => {
    expectProblem(
      run("      run: {uses: builtin:shell, with: {argv: [x], env: {LD_PRELOAD: /tmp/evil.so}}}\n"),
      "LD_PRELOAD is reserved",
    );
    expectProblem(
      run("      run: {uses: builtin:shell, with: {argv: [x], env: {PACKRUN_OUTPUT: /etc/x}}}\n"),
      "PACKRUN_OUTPUT is reserved",
    );
  });

  test("a sealed pack cannot allow egress; durations are positive and ordered; versions canonical", () => {
    expectProblem(
      `${head}spec:\n  sandbox: {mode: sealed, egressAllowlist: [example.com]}\n  steps: [{id: a, run: {uses: builtin:noop}}]\n`,
      "a sealed pack has no network",
    );
    expectProblem(run("      timeout: 0\n      run: {uses: builtin:noop}\n"), "must be a duration");
    expectProblem(
      run("      timeout: 30s1h\n      run: {uses: builtin:noop}\n"),
      "must be a duration",
    );
    expectProblem(
      `${head.replace("1.0.0", "v1.0.0")}spec: {steps: [{id: a, run: {uses: builtin:noop}}]}\n`,
      /"v1.0.0" is not a semantic version/,
    );
  });

  test("steps inside a map template cannot be read from outside", () => {
    const text = `${head}spec:\n  steps:\n    - id: m\n      map:\n        items: [1]\n        step: {id: one, run: {uses: builtin:noop}}\n    - id: b\n      when: "steps.one.status == 'succeeded'"\n      run: {uses: builtin:noop}\n`;
    expectProblem(text, 'step "one" runs once per map item; read the map step instead (steps.m)');
  });
});
