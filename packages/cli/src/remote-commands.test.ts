/**
 * End-to-end tests of the gateway commands: the real `packrun` executable (a child process per
 * call) against a real gateway, planner, executor (with its worker) and evidence service on the
 * test PostgreSQL and Redis.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type GatewayStack,
  gatedPack,
  partialFailurePack,
  startGatewayStack,
} from "@packrun/gateway/testing";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { ListRunsResponse, Run, RunEvent, SubmitRunResponse } from "./api-types.ts";
import { type CliRun, runCli } from "./testing/run-cli.ts";

const threeJobs = (version: string) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: cli-three-jobs, version: ${version}}
spec:
  inputs: [{name: who, type: string, default: world}]
  steps:
    - id: fetch
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "fetching for $1"; echo fetched', sh, "{{ inputs.who }}"]}}
    - id: build
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'for i in 1 2 3; do echo "build line $i"; done']}}
    - id: report
      run:
        uses: builtin:shell
        with: {argv: [sh, -c, 'echo "{\\"who\\": \\"$1\\"}" > report.json; echo reported', sh, "{{ inputs.who }}"]}
        artifacts: [{name: report, path: report.json}]
`;

const failing = partialFailurePack("cli-failing");

const gated = gatedPack("cli-gated");

const slow = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: cli-slow, version: 1.0.0}
spec:
  steps:
    - id: wait
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo waiting; sleep 60"]}}
`;

let stack: GatewayStack;
let dir: string;
let operatorToken: string;
/** The environment of every CLI call: the dev-mode config file, nothing from the shell. */
let env: Record<string, string>;

function cli(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<CliRun> {
  return runCli(args, { cwd: dir, env: { ...env, ...extraEnv } });
}

function json<T>(result: CliRun): T {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

async function api<T>(pathname: string): Promise<T> {
  const response = await fetch(`${stack.url}${pathname}`, {
    headers: { authorization: `Bearer ${operatorToken}` },
  });
  assert.equal(response.status, 200, pathname);
  return (await response.json()) as T;
}

async function waitForRun(id: string, done: (run: Run) => boolean): Promise<Run> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const run = await api<Run>(`/api/runs/${id}`);
    if (done(run)) return run;
    if (Date.now() > deadline) assert.fail(`run ${id} still ${run.state}`);
    await sleep(100);
  }
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  stack = await startGatewayStack();
  dir = await mkdtemp(path.join(tmpdir(), "packrun-cli-remote-"));
  operatorToken = await stack.mintToken({ groups: ["release-managers"] });
  // What the embedded default writes: the gateway, an operator token and the dev signing key.
  await writeFile(
    path.join(dir, "cli.json"),
    JSON.stringify({
      url: stack.url,
      token: operatorToken,
      signingKeyFile: stack.signingKeyFile,
      issuer: stack.issuer,
      audience: stack.audience,
      tenant: "acme",
      subject: "alice",
    }),
  );
  await writeFile(path.join(dir, "three-jobs-1.yaml"), threeJobs("1.0.0"));
  await writeFile(path.join(dir, "three-jobs-2.yaml"), threeJobs("2.0.0"));
  await writeFile(path.join(dir, "failing.yaml"), failing);
  await writeFile(path.join(dir, "gated.yaml"), gated);
  await writeFile(path.join(dir, "slow.yaml"), slow);
  env = { PACKRUN_CLI_CONFIG: path.join(dir, "cli.json"), PACKRUN_URL: "", PACKRUN_TOKEN: "" };
});

afterAll(async () => {
  await stack?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  // The stack must release every connection it opened. If one leaks, this file would never end
  // and the whole test run would hang: say so and end it (the results are already reported).
  setTimeout(() => {
    process.stderr.write("remote-commands.test.ts: a handle leaked after stack.close(); exiting\n");
    process.exit();
  }, 10_000).unref();
});

describe("packrun against a running gateway", () => {
  let succeeded: Run;

  test("packs push publishes versions; list and versions show them", async () => {
    const first = await cli(["packs", "push", "three-jobs-1.yaml"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^published cli-three-jobs@1\.0\.0 \(sha256:[0-9a-f]{64}\)$/m);
    const again = await cli(["packs", "push", "three-jobs-1.yaml"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^already published: cli-three-jobs@1\.0\.0/m);
    assert.equal((await cli(["packs", "push", "three-jobs-2.yaml"])).code, 0);

    const packs = json<{ packs: { name: string; latestVersion: string; versionCount: number }[] }>(
      await cli(["packs", "list", "--format", "json"]),
    );
    assert.deepEqual(
      packs.packs.find((pack) => pack.name === "cli-three-jobs"),
      { name: "cli-three-jobs", latestVersion: "2.0.0", versionCount: 2 },
    );
    const versions = await cli(["packs", "versions", "cli-three-jobs"]);
    assert.equal(versions.code, 0, versions.stderr);
    assert.match(versions.stdout, /^VERSION +DIGEST/);
    assert.match(versions.stdout, /^1\.0\.0 +sha256:/m);
    assert.match(versions.stdout, /^2\.0\.0 +sha256:/m);
  });

  test("run --pack NAME@1.0.0 follows the run to success with exit 0", async () => {
    const result = await cli(["run", "--pack", "cli-three-jobs@1.0.0", "--input", "who=ops"]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const id = /^submitted run ([0-9a-f-]{36}) +cli-three-jobs@1\.0\.0/m.exec(result.stdout)?.[1];
    assert.ok(id !== undefined, result.stdout);
    // Not a terminal: one appended line per change, each step reaching succeeded in order.
    for (const step of ["fetch", "build", "report"])
      assert.match(result.stdout, new RegExp(`step ${step} succeeded \\(attempt 1/\\d+, `));
    assert.ok(
      result.stdout.indexOf("step fetch succeeded") <
        result.stdout.indexOf("step report succeeded"),
    );
    assert.match(result.stdout, new RegExp(`^run ${id} succeeded in `, "m"));
    succeeded = json<Run>(await cli(["runs", "show", id, "--format", "json"]));
    assert.equal(succeeded.state, "succeeded");
    assert.equal(succeeded.pack.version, "1.0.0");
    const shown = await cli(["runs", "show", id]);
    assert.match(shown.stdout, /^State: +succeeded$/m);
    assert.match(shown.stdout, /^report +succeeded +1\/\d+/m);
  });

  test("a failing pack gives exit 1 with the failed step and its reason", async () => {
    const result = await cli(["run", "failing.yaml"]);
    assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /step broken failed/);
    assert.match(result.stdout, /logs: packrun logs [0-9a-f-]{36} --step broken/);
    assert.match(result.stderr, /^error: run [0-9a-f-]{36} failed/m);
  });

  test("logs prints a finished run's lines in order; json gives the events", async () => {
    const result = await cli(["logs", succeeded.id]);
    assert.equal(result.code, 0, result.stderr);
    const output = result.stdout
      .split("\n")
      .filter((line) => line.includes("│"))
      .map((line) => line.replace(/^.*│ /, ""));
    assert.deepEqual(output, [
      "fetching for ops",
      "fetched",
      "build line 1",
      "build line 2",
      "build line 3",
      "reported",
    ]);
    const events = (await cli(["logs", succeeded.id, "--format", "json", "--step", "build"])).stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as RunEvent);
    assert.ok(events.length >= 3);
    assert.ok(events.every((event) => event.stepId === "build"));
    const sequences = events.map((event) => event.sequence);
    assert.deepEqual(
      sequences,
      [...sequences].sort((a, b) => a - b),
    );
    const later = await cli([
      "logs",
      succeeded.id,
      "--format",
      "json",
      "--after",
      String(sequences[0]),
    ]);
    assert.ok(
      later.stdout
        .trimEnd()
        .split("\n")
        .every((line) => (JSON.parse(line) as RunEvent).sequence > (sequences[0] ?? 0)),
    );
  });

  test("logs -f follows a live run to its end, every line once and in order", async () => {
    const submitted = json<SubmitRunResponse>(
      await cli(["run", "--pack", "cli-three-jobs", "--detach", "--format", "json"]),
    );
    assert.equal(submitted.run.pack.version, "2.0.0", "without a version: the latest");
    const result = await cli(["logs", submitted.run.id, "-f"]);
    assert.equal(result.code, 0, result.stderr);
    const output = result.stdout
      .split("\n")
      .filter((line) => line.includes("│"))
      .map((line) => line.replace(/^.*│ /, ""));
    assert.deepEqual(output, [
      "fetching for world",
      "fetched",
      "build line 1",
      "build line 2",
      "build line 3",
      "reported",
    ]);
    assert.match(result.stdout, /run\.succeeded/);
  });

  test("approve: the followed run shows the gate and command; dev mode mints the bound token", async () => {
    const following = cli(["run", "gated.yaml"]);
    const listed = await (async () => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const page = await api<ListRunsResponse>(
          "/api/runs?state=awaiting-approval&pack=cli-gated",
        );
        if (page.runs.length > 0) return page.runs;
        if (Date.now() > deadline) assert.fail("no run reached awaiting-approval");
        await sleep(100);
      }
    })();
    const id = listed[0]?.id ?? "";
    // The operator token is not bound to the gate: refused (403 → exit 3).
    const unbound = await cli(["approve", id, "release", "--token", operatorToken]);
    assert.equal(unbound.code, 3, unbound.stderr);
    const approved = await cli(["approve", id, "release", "--comment", "looks good"]);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, new RegExp(`^approved gate release of run ${id}: 1/1 approvals`));
    const result = await following;
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(
      result.stdout,
      /approval required: gate release \(step release-gate, 0\/1 approvals, grants: release-managers\): ship it\?/,
    );
    assert.match(result.stdout, new RegExp(`approve: packrun approve ${id} release`));
    const run = json<Run>(await cli(["runs", "show", id, "--format", "json"]));
    assert.equal(run.state, "succeeded");
    assert.deepEqual(
      run.gates.map((gate) =>
        gate.decisions.map((decision) => [decision.approver, decision.approved, decision.comment]),
      ),
      [[["alice", true, "looks good"]]],
    );
  });

  test("cancel stops a running run", async () => {
    const submitted = json<SubmitRunResponse>(
      await cli(["run", "slow.yaml", "--detach", "--format", "json", "--label", "purpose=cancel"]),
    );
    const id = submitted.run.id;
    await waitForRun(id, (run) => run.steps.some((step) => step.state === "running"));
    const result = await cli(["cancel", id, "--reason", "changed my mind"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`(cancelled run|cancellation requested for run) ${id}`));
    const run = await waitForRun(id, (candidate) => candidate.state === "cancelled");
    assert.deepEqual(run.labels, { purpose: "cancel" });
  });

  test("artifacts lists a run's artifacts and downloads one matching its digest", async () => {
    const listed = json<{ artifacts: { name: string; digest: string; stepId: string }[] }>(
      await cli(["artifacts", succeeded.id, "--format", "json"]),
    );
    const report = listed.artifacts.find((artifact) => artifact.name === "report");
    assert.ok(report !== undefined, JSON.stringify(listed));
    const table = await cli(["artifacts", succeeded.id]);
    assert.match(table.stdout, /^report +report +\S+ +\d+ B +sha256:/m);
    const download = await cli(["artifacts", succeeded.id, "--download", "report", "-o", "r.json"]);
    assert.equal(download.code, 0, download.stderr);
    const bytes = await readFile(path.join(dir, "r.json"));
    assert.equal(`sha256:${createHash("sha256").update(bytes).digest("hex")}`, report.digest);
    assert.deepEqual(JSON.parse(bytes.toString("utf8")), { who: "ops" });
    const missing = await cli(["artifacts", succeeded.id, "--download", "nope"]);
    assert.equal(missing.code, 4);
  });

  test("bundle downloads the evidence bundle and verifies it against the published keys", async () => {
    const result = await cli(["bundle", succeeded.id, "-o", "evidence.tar.gz"]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^verified: run ${succeeded.id} .*\\(trusted\\)$`, "m"));
    // Offline without a trusted key: refused (exit 6), unless integrity-only is asked for.
    const offline = await cli(["verify", "evidence.tar.gz"], { PACKRUN_TRUSTED_KEYS: "" });
    assert.equal(offline.code, 6, offline.stderr);
    const integrity = await cli(["verify", "evidence.tar.gz", "--integrity-only"]);
    assert.equal(integrity.code, 0, integrity.stderr);
    const raw = await cli(["bundle", succeeded.id, "-o", "raw.tar.gz", "--no-verify"]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.deepEqual(
      await readFile(path.join(dir, "raw.tar.gz")),
      await readFile(path.join(dir, "evidence.tar.gz")),
    );
  });

  test("token mints a working token from the config's signing key; its scopes are enforced", async () => {
    const minted = await cli(["token", "--scopes", "packs.read", "--subject", "reader"]);
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = decodeJwt(token);
    assert.equal(claims.sub, "reader");
    assert.equal(claims.scope, "packs.read");
    assert.equal(claims.iss, stack.issuer);
    const list = await cli(["runs", "list", "--token", token, "--format", "json"]);
    assert.equal(list.code, 0, list.stderr);
    const push = await cli(["packs", "push", "failing.yaml", "--token", token]);
    assert.equal(push.code, 3, push.stderr);
    assert.match(push.stderr, /\[PERMISSION_DENIED\]/);
  });

  test("runs list --format json gives the API's list, with filters", async () => {
    const all = json<ListRunsResponse>(await cli(["runs", "list", "--format", "json"]));
    assert.ok(all.runs.length >= 5, JSON.stringify(all.runs.map((run) => run.state)));
    const failed = json<ListRunsResponse>(
      await cli(["runs", "list", "--state", "failed", "--format", "json"]),
    );
    assert.ok(failed.runs.length >= 1);
    assert.ok(failed.runs.every((run) => run.state === "failed"));
    const paged = json<ListRunsResponse>(
      await cli(["runs", "list", "-n", "2", "--format", "json"]),
    );
    assert.equal(paged.runs.length, 2);
    assert.ok(paged.nextPageToken !== undefined);
    const table = await cli(["runs", "list", "--pack", "cli-three-jobs"]);
    assert.match(table.stdout, /^ID +PACK +STATE/);
    assert.match(table.stdout, /cli-three-jobs@1\.0\.0 +succeeded/);
  });

  test("exit codes: bad token 3, unknown run 4, invalid manifest 2, gateway down 10", async () => {
    const badToken = await cli(["runs", "list", "--token", "not-a-jwt"]);
    assert.equal(badToken.code, 3, badToken.stderr);
    assert.match(badToken.stderr, /\[UNAUTHENTICATED\]/);
    const otherTenant = await cli([
      "runs",
      "show",
      succeeded.id,
      "--token",
      await stack.mintToken({ tenant: "globex" }),
    ]);
    assert.equal(otherTenant.code, 4, otherTenant.stderr);
    const unknown = await cli(["runs", "show", "00000000-0000-4000-8000-000000000000"]);
    assert.equal(unknown.code, 4, unknown.stderr);
    assert.match(unknown.stderr, /\[RUN_NOT_FOUND\]/);
    await writeFile(
      path.join(dir, "broken.yaml"),
      "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\n",
    );
    const invalid = await cli(["packs", "push", "broken.yaml"]);
    assert.equal(invalid.code, 2, invalid.stderr);
    assert.match(invalid.stderr, /^error: broken\.yaml is invalid \(\d+ problems?\) \[PACK_/m);
    // Each problem is printed once: the summary line does not repeat the first one.
    const problems = invalid.stderr.split("\n").filter((line) => line.startsWith("broken.yaml: "));
    assert.ok(problems.length > 0, invalid.stderr);
    for (const problem of problems) {
      const message = problem.slice(problem.lastIndexOf(": ") + 2);
      assert.equal(invalid.stderr.split(message).length - 1, 1, `printed twice: ${message}`);
    }
    const down = await cli(["runs", "list", "--url", `http://127.0.0.1:${await closedPort()}`]);
    assert.equal(down.code, 10, down.stderr);
    assert.match(down.stderr, /cannot reach the gateway .*connection refused \(retryable\)/);
  });
});
