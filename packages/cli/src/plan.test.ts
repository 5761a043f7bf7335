import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "vitest";
import { runCli, tempDirWith } from "./testing/run-cli.ts";
import { samplePack, samplePackReordered } from "./testing/sample-pack.ts";

interface PlanOutput {
  planHash: string;
  summary: { packName: string; stepCount: number; secretNames: string[] };
  plan: { inputs: Record<string, unknown>; steps: unknown[] };
}

function parsePlan(stdout: string): PlanOutput {
  return JSON.parse(stdout) as PlanOutput;
}

const imagesInput = 'images=["alpine:3.20","nginx:1.27"]';

test("plan --format json prints a sha256 planHash, the summary and the plan", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(
    ["plan", "--manifest", "pack.yaml", "--input", imagesInput, "--format", "json"],
    {
      cwd: tmp.dir,
    },
  );
  assert.equal(result.code, 0, result.stderr);
  const output = parsePlan(result.stdout);
  assert.match(output.planHash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(output.summary.packName, "image-scan");
  // prepare, scan + 2 children, approve, check, deploy
  assert.equal(output.summary.stepCount, 7);
  assert.deepEqual(output.plan.inputs, { images: ["alpine:3.20", "nginx:1.27"], deploy: false });
});

test("planHash is stable across YAML key order, quoting and comments", async () => {
  await using tmp = await tempDirWith({ "a.yaml": samplePack, "b.yaml": samplePackReordered });
  const args = ["--input", imagesInput, "--format", "json"];
  const a = await runCli(["plan", "a.yaml", ...args], { cwd: tmp.dir });
  const b = await runCli(["plan", "b.yaml", ...args], { cwd: tmp.dir });
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(parsePlan(a.stdout).planHash, parsePlan(b.stdout).planHash);
  // Different inputs must give a different hash.
  const c = await runCli(["plan", "a.yaml", "--input", 'images=["other"]', "--format", "json"], {
    cwd: tmp.dir,
  });
  assert.notEqual(parsePlan(c.stdout).planHash, parsePlan(a.stdout).planHash);
});

test("--inputs reads a JSON file and --input overrides it, parsing values as JSON", async () => {
  await using tmp = await tempDirWith({
    "pack.yaml": samplePack,
    "inputs.json": JSON.stringify({ images: ["from-file"], deploy: false }),
  });
  const fromFile = await runCli(
    ["plan", "pack.yaml", "--inputs", "inputs.json", "--format", "json"],
    {
      cwd: tmp.dir,
    },
  );
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.deepEqual(parsePlan(fromFile.stdout).plan.inputs, {
    images: ["from-file"],
    deploy: false,
  });

  const overridden = await runCli(
    ["plan", "pack.yaml", "--inputs", "inputs.json", "--input", "deploy=true", "--format", "json"],
    { cwd: tmp.dir },
  );
  assert.equal(overridden.code, 0, overridden.stderr);
  assert.deepEqual(parsePlan(overridden.stdout).plan.inputs, {
    images: ["from-file"],
    deploy: true,
  });
});

test("a missing required input exits 2 and names the input", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(["plan", "pack.yaml"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.equal(result.stdout, "");
  assert.match(
    result.stderr,
    /^pack\.yaml: inputs\.images \(line \d+:\d+\): required input "images" is missing$/m,
  );
});

test("a bad value from the inputs file is reported against that file", async () => {
  await using tmp = await tempDirWith({
    "pack.yaml": samplePack,
    "in.json": '{"images": 3, "extra": 1}',
  });
  const result = await runCli(["plan", "pack.yaml", "--inputs", "in.json"], { cwd: tmp.dir });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^in\.json: inputs\.images: .*images/m);
  assert.match(result.stderr, /^in\.json: inputs\.extra: .*not declared/m);
});

test("an unreadable or malformed inputs file exits 2 naming the file", async () => {
  await using tmp = await tempDirWith({
    "pack.yaml": samplePack,
    "bad.json": "{images: [",
    "list.json": "[]",
  });
  const missing = await runCli(["plan", "pack.yaml", "--inputs", "nope.json"], { cwd: tmp.dir });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.json: no such file/);
  const malformed = await runCli(["plan", "pack.yaml", "--inputs", "bad.json"], { cwd: tmp.dir });
  assert.equal(malformed.code, 2);
  assert.match(malformed.stderr, /bad\.json is not valid JSON/);
  const list = await runCli(["plan", "pack.yaml", "--inputs", "list.json"], { cwd: tmp.dir });
  assert.equal(list.code, 2);
  assert.match(list.stderr, /list\.json must hold a JSON object/);
});

test("plan table shows the summary and never a secret value", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(["plan", "pack.yaml", "--input", imagesInput], { cwd: tmp.dir });
  assert.equal(result.code, 0, result.stderr);
  const out = result.stdout;
  assert.match(out, /^Pack:\s+image-scan@1\.2\.0$/m);
  assert.match(out, /^Plan hash:\s+sha256:[0-9a-f]{64}$/m);
  assert.match(out, /^Steps:\s+7$/m);
  assert.match(out, /^Sandbox:\s+open$/m);
  assert.match(out, /^Policies:\s+no-critical$/m);
  assert.match(out, /^Secrets:\s+registryToken /m);
  assert.match(out, /^\s+release\s+2\s+security-lead\s+1d\s+Production deploy$/m);
  assert.match(out, /^\s+report\s+file\s+report\.json$/m);
});

test("--output writes the rendering atomically and prints nothing on stdout", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(
    ["plan", "pack.yaml", "--input", imagesInput, "--format", "json", "--output", "plan.json"],
    { cwd: tmp.dir },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "");
  const written = parsePlan(await readFile(path.join(tmp.dir, "plan.json"), "utf8"));
  assert.match(written.planHash, /^sha256:/);
  // No temp file is left behind.
  assert.deepEqual((await readdir(tmp.dir)).sort(), ["pack.yaml", "plan.json"]);
});

test("--output into a missing directory exits 2 naming the file", async () => {
  await using tmp = await tempDirWith({ "pack.yaml": samplePack });
  const result = await runCli(
    ["plan", "pack.yaml", "--input", imagesInput, "-o", "no/such/dir/plan.json"],
    {
      cwd: tmp.dir,
    },
  );
  assert.equal(result.code, 2);
  assert.match(result.stderr, /cannot write output no\/such\/dir\/plan\.json/);
});
