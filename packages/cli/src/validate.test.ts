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

test("validate --format json prints the result as JSON; problems too, with exit 2", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack, "broken.yaml": invalidPack });
  const valid = await runCli(["validate", "pack.yaml", "--format", "json"], { cwd: tmp.dir });
  assert.equal(valid.code, 0, valid.stderr);
  assert.deepEqual(JSON.parse(valid.stdout), {
    valid: true,
    name: "image-scan",
    version: "1.2.0",
    diagnostics: [],
  });
  const invalid = await runCli(["validate", "broken.yaml", "--format", "json"], { cwd: tmp.dir });
  assert.equal(invalid.code, 2);
  const report = JSON.parse(invalid.stdout) as {
    valid: boolean;
    diagnostics: { path: string; line: number }[];
  };
  assert.equal(report.valid, false);
  assert.equal(report.diagnostics[0]?.line, 14);
  assert.match(invalid.stderr, /^error: broken\.yaml is invalid \(1 problem\)$/m);
});

test("-f is --follow only: the format option is long-only everywhere", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const short = await runCli(["validate", "pack.yaml", "-f", "json"], { cwd: tmp.dir });
  assert.equal(short.code, 2);
  assert.match(short.stderr, /unknown option '-f'/);
  for (const command of ["run", "verify", "plan", "runs list", "token"]) {
    const help = await runCli([...command.split(" "), "--help"], { cwd: tmp.dir });
    assert.match(help.stdout, /^ {2}--format <format>/m, command);
    assert.doesNotMatch(help.stdout, /-f, --format/, command);
  }
});

test("a misspelled option gets a suggestion; defaults are stated once", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const typo = await runCli(["validate", "pack.yaml", "--formt", "json"], { cwd: tmp.dir });
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /Did you mean --format\?/);
  const help = await runCli(["runs", "list", "--help"], { cwd: tmp.dir });
  assert.match(help.stdout, /at most this many runs \(default: 50\)/);
  assert.doesNotMatch(help.stdout, /\(default 50\)/);
});
