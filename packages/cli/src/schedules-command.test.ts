/**
 * `packrun schedules …`, `run --not-before` and `run --timeout`: the real `packrun` executable
 * against a real gateway and services on the test PostgreSQL and Redis.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type GatewayStack, startGatewayStack } from "@packrun/gateway/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { ListRunsResponse, Run, SubmitRunResponse } from "./api-types.ts";
import type { ListSchedulesResponse, Schedule } from "./schedules-client.ts";
import { type CliRun, runCliInProcess as runCli } from "./testing/run-cli.ts";

const greet = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: cli-greet, version: 1.0.0}
spec:
  inputs: [{name: who, type: string}]
  steps:
    - id: hello
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "hello $1"', sh, "{{ inputs.who }}"]}}
`;

const bounded = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: cli-bounded, version: 1.0.0}
spec:
  timeout: 1h
  steps:
    - id: long
      run: {uses: builtin:shell, with: {argv: [sleep, "60"]}}
`;

let stack: GatewayStack;
let dir: string;
let env: Record<string, string>;

const cli = (args: readonly string[]): Promise<CliRun> => runCli(args, { cwd: dir, env });

function json<T>(result: CliRun): T {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

beforeAll(async () => {
  stack = await startGatewayStack({ executor: { timekeeper: { intervalMs: 100 } } });
  dir = await mkdtemp(path.join(tmpdir(), "packrun-cli-schedules-"));
  await writeFile(
    path.join(dir, "cli.json"),
    JSON.stringify({ url: stack.url, token: await stack.mintToken(), tenant: "acme" }),
  );
  await writeFile(path.join(dir, "greet.yaml"), greet);
  await writeFile(path.join(dir, "bounded.yaml"), bounded);
  env = { PACKRUN_CLI_CONFIG: path.join(dir, "cli.json"), PACKRUN_URL: "", PACKRUN_TOKEN: "" };
  for (const file of ["greet.yaml", "bounded.yaml"])
    assert.equal((await cli(["packs", "push", file])).code, 0);
});
afterAll(async () => {
  await stack?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("packrun schedules", () => {
  test("create, list, show, a run per due time, pause, resume, delete", async () => {
    const created = json<Schedule>(
      await cli([
        "schedules",
        "create",
        "greet-often",
        "--pack",
        "cli-greet",
        "--cron",
        "* * * * * *",
        "--tz",
        "Asia/Tokyo",
        "--input",
        "who=cli",
        "--overlap",
        "skip",
        "--timeout",
        "5m",
        "--format",
        "json",
      ]),
    );
    assert.equal(created.name, "greet-often");
    assert.equal(created.timeZone, "Asia/Tokyo");
    assert.equal(created.overlapPolicy, "skip");
    assert.equal(created.timeoutSeconds, 300);
    const table = await cli(["schedules", "list"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(
      table.stdout,
      /greet-often\s+cli-greet@latest\s+\* \* \* \* \* \*\s+Asia\/Tokyo\s+active/,
    );
    const listed = json<ListSchedulesResponse>(await cli(["schedules", "ls", "--format", "json"]));
    assert.deepEqual(
      listed.schedules.map((schedule) => schedule.name),
      ["greet-often"],
    );
    let run: Run | undefined;
    for (let waited = 0; run === undefined && waited < 15_000; waited += 200) {
      const runs = json<ListRunsResponse>(
        await cli(["runs", "list", "--pack", "cli-greet", "--format", "json"]),
      );
      run = runs.runs.find((each) => each.schedule?.id === created.id);
      if (run === undefined) await sleep(200);
    }
    assert.ok(run !== undefined, "the schedule made a run");
    assert.equal(run.timeoutSeconds, 300);
    const details = await cli(["runs", "show", run.id]);
    assert.equal(details.code, 0, details.stderr);
    assert.match(details.stdout, new RegExp(`Schedule:?\\s+${created.id} \\(due \\d{4}-`));
    const shown = await cli(["schedules", "show", "greet-often"]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /last due:\s+\d{4}-/);
    assert.match(shown.stdout, /runs as:\s+alice/);
    const paused = await cli(["schedules", "pause", "greet-often"]);
    assert.equal(paused.stdout, "paused schedule greet-often\n");
    const resumed = await cli(["schedules", "resume", created.id]);
    assert.match(resumed.stdout, /^resumed schedule greet-often; next run \d{4}-/);
    assert.equal((await cli(["schedules", "delete", "greet-often"])).code, 0);
    const gone = await cli(["schedules", "show", "greet-often"]);
    assert.equal(gone.code, 4, "not found exits 4");
    assert.match(gone.stderr, /schedule greet-often not found/);
  }, 60_000);

  test("bad arguments are refused before anything is sent, or by the gateway with its reason", async () => {
    const policy = await cli([
      "schedules",
      "create",
      "x",
      "--pack",
      "cli-greet",
      "--cron",
      "@hourly",
      "--overlap",
      "sometimes",
    ]);
    assert.equal(policy.code, 2);
    assert.match(policy.stderr, /allowed choices are allow, skip, queue/);
    const cron = await cli(["schedules", "create", "x", "--pack", "cli-greet", "--cron", "nope"]);
    assert.equal(cron.code, 2, cron.stderr);
    assert.match(cron.stderr, /cron "nope" is not a valid cron expression/);
  });
});

describe("packrun run --not-before and --timeout", () => {
  test("a delayed run waits queued and says why; a shortened deadline ends it timed_out", async () => {
    const delayed = json<SubmitRunResponse>(
      await cli([
        "run",
        "--pack",
        "cli-greet",
        "--input",
        "who=later",
        "--not-before",
        "+2s",
        "--detach",
        "--format",
        "json",
      ]),
    );
    assert.equal(delayed.run.state, "queued");
    assert.ok(delayed.run.notBefore !== undefined);
    assert.match(delayed.run.waitingReason ?? "", /delayed: starts at/);
    const bad = await cli(["run", "--pack", "cli-greet", "--not-before", "soon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /RFC 3339/);

    const timedOut = await cli([
      "run",
      "--pack",
      "cli-bounded",
      "--timeout",
      "1s",
      "--format",
      "json",
    ]);
    assert.equal(timedOut.code, 1, timedOut.stderr);
    const run = JSON.parse(timedOut.stdout) as Run;
    assert.equal(run.state, "timed_out");
    assert.equal(run.reason, "run deadline of 1s passed");
    const longer = await cli(["run", "--pack", "cli-bounded", "--timeout", "2h"]);
    assert.equal(longer.code, 2);
    assert.match(longer.stderr, /longer than the pack's spec.timeout of 3600s/);
  }, 60_000);
});
