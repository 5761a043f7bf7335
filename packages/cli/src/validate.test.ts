import assert from "node:assert/strict";
import { test } from "vitest";
import { runCli, tempDirWith } from "./testing/run-cli.ts";
import { samplePack } from "./testing/sample-pack.ts";

// The bad `when` is on line 14: the error must point there, not just name the step.
const invalidPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: broken
  version: 1.0.0
spec:
  steps:
    - id: first
      run:
        uses: builtin:noop
    - id: second
      run:
        uses: builtin:noop
      when: "inputs.nope == "
`;

test("validate prints name@version for a valid manifest", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(["validate", "--manifest", "pack.yaml"], { cwd: tmp.dir });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "valid: image-scan@1.2.0\n");
  assert.equal(result.stderr, "");
});

test("validate accepts the manifest as a positional argument", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(["validate", "pack.yaml"], { cwd: tmp.dir });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "valid: image-scan@1.2.0\n");
});

test("validate reports each problem with file, path and line:column, exit 2", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": invalidPack });
  const result = await runCli(["validate", "pack.yaml"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.equal(result.stdout, "");
  const lines = result.stderr.trimEnd().split("\n");
  assert.ok(lines.length >= 1);
  for (const line of lines) assert.match(line, /^pack\.yaml: /);
  assert.match(result.stderr, /^pack\.yaml: spec\.steps\[1\]\.when \(line 14:\d+\): .+/m);
});

test("validate on a missing file names it and exits 2", async () => {
  await using tmp = await tempDirWith({});
  const result = await runCli(["validate", "--manifest", "missing.yaml"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /missing\.yaml/);
  assert.match(result.stderr, /no such file/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
});

test("validate without a manifest is a usage error (exit 2)", async () => {
  await using tmp = await tempDirWith({});
  const result = await runCli(["validate"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--manifest/);
});

test("an unknown option is a usage error (exit 2)", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(["validate", "pack.yaml", "--frobnicate"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown option '--frobnicate'/);
});

test("--version and --help exit 0", async () => {
  await using tmp = await tempDirWith({});
  const version = await runCli(["--version"], { cwd: tmp.dir });
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const help = await runCli(["--help"], { cwd: tmp.dir });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /validate/);
  assert.match(help.stdout, /Exit codes:/);
});
