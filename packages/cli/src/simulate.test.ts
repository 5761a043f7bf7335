import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "vitest";
import { runCli, tempDirWith } from "./testing/run-cli.ts";
import { samplePack } from "./testing/sample-pack.ts";

interface Step {
  id: string;
  kind: string;
  status: string;
  reason: string;
  children: Step[];
}

interface SimulationOutput {
  planHash: string;
  steps: Step[];
  outputs: { name: string }[];
}

function find(steps: readonly Step[], id: string): Step {
  const step = steps.find((candidate) => candidate.id === id);
  assert.ok(step, `step ${id} present`);
  return step;
}

const args = ["simulate", "pack.yaml", "--input", 'images=["alpine","nginx"]'];

test("simulate --format json classifies every step, children included", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli([...args, "--format", "json"], { cwd: tmp.dir });
  assert.equal(result.code, 0, result.stderr);
  const output = JSON.parse(result.stdout) as SimulationOutput;
  assert.match(output.planHash, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(
    output.steps.map((step) => step.id),
    ["prepare", "scan", "approve", "check", "deploy"],
  );
  for (const step of output.steps) {
    assert.equal(typeof step.kind, "string");
    assert.equal(typeof step.reason, "string");
    assert.ok(Array.isArray(step.children));
  }

  const scan = find(output.steps, "scan");
  assert.equal(scan.kind, "map");
  assert.deepEqual(
    scan.children.map((child) => [child.id, child.kind, child.status]),
    [
      ["scan[0]::scan-one", "run", "pending"],
      ["scan[1]::scan-one", "run", "pending"],
    ],
  );

  const approve = find(output.steps, "approve");
  assert.equal(approve.status, "requires-approval");
  assert.match(approve.reason, /release/);
  assert.equal(find(output.steps, "check").status, "requires-policy");

  const deploy = find(output.steps, "deploy");
  assert.equal(deploy.status, "skipped");
  assert.match(deploy.reason, /inputs\.deploy/);

  assert.deepEqual(
    output.outputs.map((out) => out.name),
    ["report"],
  );
});

test("simulate table indents map children under their parent", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(args, { cwd: tmp.dir });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.split("\n");
  assert.ok(lines.some((line) => /^STEP\s+KIND\s+STATUS\s+REASON$/.test(line)));
  assert.ok(lines.some((line) => /^scan\s+map\s+pending/.test(line)));
  assert.ok(lines.some((line) => /^ {2}scan\[0\]::scan-one\s+run\s+pending/.test(line)));
  assert.ok(
    lines.some((line) => /^deploy\s+run\s+skipped\s+when `inputs\.deploy` is false$/.test(line)),
  );
  assert.ok(
    lines.some((line) =>
      /^approve\s+approval-gate\s+requires-approval\s+needs 2 approvals/.test(line),
    ),
  );
  assert.ok(lines.some((line) => /^report\s+file\s+report\.json$/.test(line)));
});

test("simulate --output writes the file and nothing to stdout", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli([...args, "--output", "sim.txt"], { cwd: tmp.dir });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "");
  const written = await readFile(path.join(tmp.dir, "sim.txt"), "utf8");
  assert.match(written, /^ {2}scan\[1\]::scan-one/m);
});

test("simulate rejects an unknown --format with exit 2", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli([...args, "--format", "xml"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /xml/);
});
