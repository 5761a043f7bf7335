import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type GatewayStack, gatedPack, startGatewayStack } from "@packrun/gateway/testing";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { DeadLetter, Run, SubmitRunResponse } from "./api-types.ts";
import { type CliRun, runCliInProcess as runCli } from "./testing/run-cli.ts";

/** Fails at `flaky` until `<dir>/fixed` exists; `prepare` counts its runs. Needs a secret. */
const flaky = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: cli-flaky, version: 1.0.0}
spec:
  inputs: [{name: dir, type: string, required: true}]
  secrets: [{name: token}]
  steps:
    - id: prepare
      run:
        uses: builtin:shell
        with:
          env: {DIR: "{{ inputs.dir }}"}
          script: 'echo x >> "$DIR/prepare.count"'
    - id: flaky
      run:
        uses: builtin:shell
        with:
          env: {DIR: "{{ inputs.dir }}", TOKEN: "{{ secrets.token }}"}
          script: 'test -n "$TOKEN" && test -f "$DIR/fixed" || exit 3'
`;

let stack: GatewayStack;
let dir: string;
let env: Record<string, string>;

function cli(args: readonly string[]): Promise<CliRun> {
  return runCli(args, { cwd: dir, env });
}

function json<T>(result: CliRun): T {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

async function waitForState(id: string, states: readonly string[]): Promise<Run> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = json<Run>(await cli(["runs", "show", id, "--format", "json"]));
    if (states.includes(run.state)) return run;
    assert.ok(Date.now() < deadline, `run ${id} still ${run.state}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  stack = await startGatewayStack();
  dir = await mkdtemp(path.join(tmpdir(), "packrun-cli-rerun-"));
  await writeFile(path.join(dir, "flaky.yaml"), flaky);
  await writeFile(path.join(dir, "gated.yaml"), gatedPack("cli-rerun-gated"));
  await writeFile(
    path.join(dir, "cli.json"),
    JSON.stringify({
      url: stack.url,
      token: await stack.mintToken({ groups: ["release-managers"] }),
    }),
  );
  env = { PACKRUN_CLI_CONFIG: path.join(dir, "cli.json"), PACKRUN_URL: "", PACKRUN_TOKEN: "" };
});

afterAll(async () => {
  await stack?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("packrun rerun and resume", () => {
  test("resume keeps what succeeded, rerun runs everything, both linked", async () => {
    const shared = await stepSharedDir("cli-rerun-");
    const submitted = json<SubmitRunResponse>(
      await cli([
        "run",
        "flaky.yaml",
        "--input",
        `dir=${shared}`,
        "--secret",
        "token=t0ken",
        "--detach",
        "--format",
        "json",
      ]),
    );
    const failed = await waitForState(submitted.run.id, ["failed"]);

    const missing = await cli(["resume", failed.id]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /secret "token" is declared but not supplied/);

    await writeFile(path.join(shared, "fixed"), "");
    const resumed = json<Run>(
      await cli(["resume", failed.id, "--secret", "token=t0ken", "--format", "json"]),
    );
    assert.equal(resumed.state, "succeeded");
    assert.deepEqual(resumed.rerunOf, { runId: failed.id, mode: "resume" });
    assert.equal(resumed.planHash, failed.planHash);
    assert.match(
      resumed.steps.find((step) => step.id === "prepare")?.reason ?? "",
      /kept from run/,
    );

    const rerun = await cli(["rerun", failed.id, "--secret", "token=t0ken"]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stdout, new RegExp(`rerun of run ${failed.id} as run [0-9a-f-]{36}`));

    const shown = await cli(["runs", "show", failed.id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(
      shown.stdout,
      new RegExp(`Started again as: +${resumed.id} \\(resume\\), `),
      shown.stdout,
    );
    const resumedShown = await cli(["runs", "show", resumed.id]);
    assert.match(resumedShown.stdout, new RegExp(`Resumed from: +${failed.id}`));
  });

  test("a run that has not finished is refused with exit 1 and the reason", async () => {
    const submitted = json<SubmitRunResponse>(
      await cli(["run", "gated.yaml", "--detach", "--format", "json"]),
    );
    await waitForState(submitted.run.id, ["awaiting-approval"]);
    const refused = await cli(["rerun", submitted.run.id]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /RUN_NOT_FINISHED|has not finished|is still awaiting-approval/);
    assert.equal((await cli(["cancel", submitted.run.id])).code, 0);
  });

  test("dead-letters list and retry", async () => {
    const shared = await stepSharedDir("cli-dead-");
    const submitted = json<SubmitRunResponse>(
      await cli([
        "run",
        "flaky.yaml",
        "--input",
        `dir=${shared}`,
        "--secret",
        "token=t0ken",
        "--detach",
        "--format",
        "json",
      ]),
    );
    await waitForState(submitted.run.id, ["failed"]);
    const listed = json<{ deadLetters: DeadLetter[] }>(
      await cli(["dead-letters", "list", "--run", submitted.run.id, "--format", "json"]),
    );
    assert.equal(listed.deadLetters.length, 1);
    const letter = listed.deadLetters[0] as DeadLetter;
    assert.equal(letter.stepId, "flaky");
    assert.equal(letter.lastAttempt?.exitCode, 3);
    const table = await cli(["dead-letters", "list", "--run", submitted.run.id]);
    assert.match(table.stdout, new RegExp(`${letter.id} +${submitted.run.id} +flaky +1 +exit 3 `));

    const usage = await cli(["dead-letters", "retry"]);
    assert.equal(usage.code, 2);
    await writeFile(path.join(shared, "fixed"), "");
    const retried = await cli(["dead-letters", "retry", letter.id, "--secret", "token=t0ken"]);
    assert.equal(retried.code, 0, retried.stderr);
    const match = /re-drove dead letter \S+ of run \S+ as run ([0-9a-f-]{36})/.exec(retried.stdout);
    assert.ok(match, retried.stdout);
    assert.equal(
      (await waitForState(match[1] as string, ["succeeded", "failed"])).state,
      "succeeded",
    );
    const none = await cli(["dead-letters", "list", "--run", submitted.run.id]);
    assert.equal(none.stdout, "No dead letters.\n");
    const again = await cli(["dead-letters", "retry", letter.id, "--secret", "token=t0ken"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already re-driven/);

    // The first test's failed run still has an open dead letter; without its secret it is refused.
    const all = await cli(["dead-letters", "retry", "--all"]);
    assert.equal(all.code, 1, all.stderr);
    assert.match(all.stdout, /not re-driven: dead letter \S+: SECRET_MISSING: /);
  });
});
