import assert from "node:assert/strict";
import { test } from "vitest";
import type { Run, Step } from "./api-types.ts";
import { sendJson, startFakeGateway, startSse } from "./testing/fake-gateway.ts";
import { runCli, tempDirWith } from "./testing/run-cli.ts";

function snapshot(state: Run["state"], steps: Step[], fields: Partial<Run> = {}): Run {
  return {
    id: "r1",
    pack: { name: "p", version: "1.0.0", digest: "sha256:d" },
    planHash: "sha256:plan",
    state,
    priority: 5,
    createdAt: "2026-01-01T12:00:00.000Z",
    startedAt: "2026-01-01T12:00:00.000Z",
    submittedBy: "alice",
    labels: {},
    steps,
    gates: [],
    pendingGates: [],
    ...fields,
  };
}

const step = (id: string, state: Step["state"], fields: Partial<Step> = {}): Step => ({
  id,
  kind: "run",
  state,
  attempt: state === "pending" ? 0 : 1,
  maxAttempts: 1,
  attempts: [],
  ...fields,
});

const snapshots = [
  snapshot("running", [step("ok", "running"), step("broken", "pending")]),
  snapshot("running", [step("ok", "succeeded", { durationMs: 200 }), step("broken", "running")]),
  snapshot(
    "failed",
    [
      step("ok", "succeeded", { durationMs: 200 }),
      step("broken", "failed", { exitCode: 3, reason: "exit code 3", durationMs: 100 }),
    ],
    { reason: "step broken failed", finishedAt: "2026-01-01T12:00:01.000Z" },
  ),
];

test("run submits what the flags say, follows the run and exits 1 when it failed", async () => {
  const gateway = await startFakeGateway({
    "POST /api/runs": (_request, response) =>
      sendJson(response, 201, { created: true, run: snapshots[0] }),
    "GET /api/runs/r1": (_request, response, index) =>
      sendJson(response, 200, snapshots[Math.min(index, snapshots.length - 1)]),
    "GET /api/runs/r1/logs": (_request, response) => {
      // Liveness only: a few events nudge the follower to fetch the graph again.
      startSse(response);
      let sequence = 0;
      const timer = setInterval(() => {
        sequence++;
        response.write(
          `id: ${sequence}\nevent: run-event\ndata: ${JSON.stringify({ sequence, time: "2026-01-01T12:00:00.000Z", level: "info", type: "step.running", message: "" })}\n\n`,
        );
        if (sequence === 3) {
          clearInterval(timer);
          response.end('event: end\ndata: {"state":"failed"}\n\n');
        }
      }, 100);
    },
  });
  await using inputs = await tempDirWith({ "inputs.json": '{"a": 1, "b": "x"}' });
  try {
    const result = await runCli(
      [
        "run",
        "--pack",
        "p@1.0.0",
        "--inputs",
        "inputs.json",
        "--input",
        "b=y",
        "--secret",
        "token=s3cret",
        "--secret-env",
        "other=CLI_TEST_SECRET",
        "--label",
        "team=ops",
        "--priority",
        "5",
        "--idempotency-key",
        "k-1",
        "--url",
        gateway.url,
        "--token",
        "t",
      ],
      { cwd: inputs.dir, env: { CLI_TEST_SECRET: "from-env" } },
    );
    assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
    const submitted = gateway.requests.find((request) => request.method === "POST");
    assert.deepEqual(JSON.parse(submitted?.body ?? "{}"), {
      pack: { name: "p", version: "1.0.0" },
      inputs: { a: 1, b: "y" },
      secrets: { token: "s3cret", other: "from-env" },
      labels: { team: "ops" },
      priority: 5,
      idempotencyKey: "k-1",
    });
    const lines = result.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "submitted run r1  p@1.0.0  plan sha256:plan");
    const changes = lines.slice(1).map((line) => line.replace(/^\d\d:\d\d:\d\d /, ""));
    assert.deepEqual(changes, [
      "run r1 running",
      "step ok running (attempt 1/1)",
      "step ok succeeded (attempt 1/1, 0.2s)",
      "step broken running (attempt 1/1)",
      "run r1 failed: step broken failed",
      "step broken failed (attempt 1/1, 0.1s): exit code 3",
      "  step broken failed (exit 3): exit code 3",
      "    logs: packrun logs r1 --step broken",
    ]);
    assert.equal(result.stderr, "error: run r1 failed: step broken failed\n");
  } finally {
    await gateway.close();
  }
});

test("run --detach prints the run; --format json prints the API's answer", async () => {
  const gateway = await startFakeGateway({
    "POST /api/runs": (_request, response) =>
      sendJson(response, 200, { created: false, run: snapshots[0] }),
  });
  await using pack = await tempDirWith({ "pack.yaml": "apiVersion: stellaops.io/pack.v1\n" });
  try {
    const common = ["--detach", "--url", gateway.url, "--token", "t"];
    const table = await runCli(["run", "pack.yaml", ...common], { cwd: pack.dir });
    assert.equal(table.code, 0, table.stderr);
    assert.equal(
      table.stdout,
      "already submitted (same idempotency key): run r1  p@1.0.0  plan sha256:plan\nfollow: packrun logs r1 -f\n",
    );
    assert.deepEqual(JSON.parse(gateway.requests[0]?.body ?? "{}"), {
      manifest: "apiVersion: stellaops.io/pack.v1\n",
    });
    const json = await runCli(["run", "pack.yaml", ...common, "--format", "json"], {
      cwd: pack.dir,
    });
    assert.deepEqual(JSON.parse(json.stdout), { created: false, run: snapshots[0] });
  } finally {
    await gateway.close();
  }
});

test("run checks its arguments before calling anyone", async () => {
  const both = await runCli(["run", "pack.yaml", "--pack", "p", "--url", "http://127.0.0.1:9"], {
    cwd: process.cwd(),
  });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /either a manifest file or --pack/);
  const badPriority = await runCli(["run", "--pack", "p", "--priority", "5000"], {
    cwd: process.cwd(),
  });
  assert.equal(badPriority.code, 2);
  assert.match(badPriority.stderr, /whole number from -1000 to 1000/);
});
