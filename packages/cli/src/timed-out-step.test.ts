/**
 * A step that times out is one of the run's failures as the CLI prints them: the real `packrun`
 * executable against the real gateway, planner, executor and evidence service.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type GatewayStack, startGatewayStack } from "@packrun/gateway/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { Run } from "./api-types.ts";
import { runCli } from "./testing/run-cli.ts";

const timesOut = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: cli-times-out, version: 1.0.0}
spec:
  steps:
    - id: first
      run: {uses: builtin:noop}
    - id: hangs
      timeout: 1s
      run: {uses: builtin:shell, with: {argv: [sleep, "30"]}}
`;

let stack: GatewayStack;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await startGatewayStack();
  dir = await mkdtemp(path.join(tmpdir(), "packrun-cli-timeout-"));
  await writeFile(
    path.join(dir, "cli.json"),
    JSON.stringify({ url: stack.url, token: await stack.mintToken(), tenant: "acme" }),
  );
  await writeFile(path.join(dir, "times-out.yaml"), timesOut);
  env = { PACKRUN_CLI_CONFIG: path.join(dir, "cli.json"), PACKRUN_URL: "", PACKRUN_TOKEN: "" };
});
afterAll(async () => {
  await stack.close();
  await rm(dir, { recursive: true, force: true });
});

describe("a timed-out step", () => {
  test("is listed among the run's failures by `run`, with its state as the API spells it", async () => {
    const result = await runCli(["run", "times-out.yaml"], { cwd: dir, env });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^ {2}step hangs timed_out: timed out after 1s$/m);
    assert.match(result.stdout, /logs: .*logs [0-9a-f-]+ --step hangs/);
    assert.doesNotMatch(result.stdout, /step first succeeded: /);
  });

  test("keeps the API's spelling in JSON output", async () => {
    const result = await runCli(["run", "times-out.yaml", "--format", "json"], { cwd: dir, env });
    assert.equal(result.code, 1, result.stderr);
    const run = JSON.parse(result.stdout) as Run;
    assert.equal(run.steps.find((step) => step.id === "hangs")?.state, "timed_out");
  });
});
