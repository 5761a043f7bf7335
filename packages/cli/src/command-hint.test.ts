import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "vitest";
import { commandPrefix } from "./command-hint.ts";
import { sendJson, startFakeGateway } from "./testing/fake-gateway.ts";
import { runCli, tempDirWith } from "./testing/run-cli.ts";

const shim = path.join(import.meta.dirname, "..", "bin", "packrun.js");
const repository = path.resolve(import.meta.dirname, "..", "..", "..");

const run = {
  id: "3f2c1a9e-0b7d-4c1a-9e2f-0a1b2c3d4e5f",
  pack: { name: "p", version: "1.0.0", digest: "sha256:d" },
  planHash: "sha256:plan",
  state: "queued",
  priority: 0,
  createdAt: "2026-01-01T12:00:00.000Z",
  submittedBy: "alice",
  labels: {},
  steps: [],
  gates: [],
  pendingGates: [],
};

/** Runs `node shim args` with the given Node and environment; resolves with its output. */
function runShim(
  node: string,
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [shim, ...args], {
      cwd: options.cwd,
      env: { ...process.env, npm_lifecycle_event: "", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("the suggested command is the one the user ran packrun with", () => {
  assert.equal(commandPrefix({ npm_lifecycle_event: "packrun" }, "/repo"), "npm run -s packrun --");
  assert.equal(commandPrefix({}, "/repo"), "packrun");
  assert.equal(
    commandPrefix({ PACKRUN_INVOKED_AS: "/repo/node_modules/.bin/packrun", PATH: "" }, "/repo"),
    "node_modules/.bin/packrun",
  );
  assert.equal(
    commandPrefix({ PACKRUN_INVOKED_AS: "/repo/packrun", PATH: "" }, "/repo"),
    "./packrun",
  );
});

test("run --detach through npm suggests `npm run -s packrun -- logs <id> -f`", async () => {
  const gateway = await startFakeGateway({
    "POST /api/runs": (_request, response) => sendJson(response, 201, { created: true, run }),
  });
  await using pack = await tempDirWith({ "pack.yaml": "apiVersion: stellaops.io/pack.v1\n" });
  try {
    const result = await runCli(
      ["run", "pack.yaml", "--detach", "--url", gateway.url, "--token", "t"],
      { cwd: pack.dir, env: { npm_lifecycle_event: "packrun", INIT_CWD: pack.dir } },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(`^follow: npm run -s packrun -- logs ${run.id} -f$`, "m"),
    );
  } finally {
    await gateway.close();
  }
});

test("the bin shim runs the CLI under any Node, the machine's older one included", async () => {
  // The machine's own Node (20 here, which cannot run .ts) and the pinned one.
  const nodes = [
    ...new Set(["/usr/bin/node", process.execPath].filter((node) => existsSync(node))),
  ];
  for (const node of nodes) {
    const result = await runShim(node, ["--version"], { cwd: repository });
    assert.equal(result.code, 0, `${node}: ${result.stderr}`);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
  }
  // Exit codes pass through, and the hints name the shim as it was started.
  const gateway = await startFakeGateway({
    "POST /api/runs": (_request, response) => sendJson(response, 201, { created: true, run }),
  });
  try {
    const missing = await runShim(nodes[0] as string, ["validate", "no-such.yaml"], {
      cwd: repository,
    });
    assert.equal(missing.code, 2, missing.stderr);
    await using pack = await tempDirWith({ "pack.yaml": "apiVersion: stellaops.io/pack.v1\n" });
    const detached = await runShim(
      nodes[0] as string,
      ["run", path.join(pack.dir, "pack.yaml"), "--detach", "--url", gateway.url, "--token", "t"],
      // No packrun on PATH: the hint must name the shim by the path it was started with.
      { cwd: repository, env: { PATH: "/usr/bin:/bin" } },
    );
    assert.equal(detached.code, 0, detached.stderr);
    assert.match(detached.stdout, /^follow: packages\/cli\/bin\/packrun\.js logs /m);
  } finally {
    await gateway.close();
  }
});
