import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createLogger } from "@packrun/logging";
import { ExecutorService, type Run, RunState, StepState } from "@packrun/proto/executor/v1";
import { serviceTransport } from "@packrun/rpc-server";
import { afterAll, test } from "vitest";
import { type Embedded, startEmbedded } from "./start-embedded.ts";

const secret = "s3cret-across-restarts";
// The pack holds only the secret's digest: the value itself must be nowhere under home.
const digest = createHash("sha256").update(secret).digest("hex");

/** `deploy`, after the approval gate, succeeds only if it gets the secret's value. */
const pack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: restart-secret, version: 1.0.0}
spec:
  secrets: [{name: deployToken}]
  approvals: [{id: release, required: 1}]
  steps:
    - id: approve
      gate: {approval: {id: release}}
    - id: deploy
      run:
        uses: builtin:shell
        with:
          argv: [sh, -c, 'test "$(printf %s "$TOKEN" | sha256sum | cut -d" " -f1)" = ${digest}']
          env: {TOKEN: "{{ secrets.deployToken }}"}
`;

const homes: string[] = [];
afterAll(() => Promise.all(homes.map((home) => rm(home, { recursive: true, force: true }))));

const logger = createLogger({ service: "test", level: process.env.PACKRUN_LOG_LEVEL ?? "silent" });

/** Runs `use` with an executor client of a fresh start of the embedded default on `home`. */
async function withEmbedded<T>(
  home: string,
  use: (client: ReturnType<typeof createClient<typeof ExecutorService>>) => Promise<T>,
): Promise<T> {
  const services: Embedded = await startEmbedded({ home, logger });
  const { transport, sessions } = serviceTransport(
    services.executorUrl,
    services.tls.services.gateway,
  );
  try {
    return await use(createClient(ExecutorService, transport));
  } finally {
    sessions.abort();
    await services.close();
  }
}

async function waitFor(
  client: ReturnType<typeof createClient<typeof ExecutorService>>,
  runId: string,
  done: (run: Run) => boolean,
): Promise<Run> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = (await client.getRun({ tenant: "default", runId })).run;
    if (run !== undefined && done(run)) return run;
    if (Date.now() > deadline) assert.fail(`run ${runId} is still ${run?.state}: ${run?.reason}`);
    await sleep(100);
  }
}

test("a run waiting for approval keeps its secrets across a restart of the embedded default", {
  timeout: 120_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "packrun-restart-"));
  homes.push(home);
  const { runId, planHash } = await withEmbedded(home, async (client) => {
    const submitted = await client.submitRun({
      tenant: "default",
      pack: { source: { case: "manifest", value: pack } },
      secrets: { deployToken: secret },
      submittedBy: "test",
    });
    const runId = submitted.run?.id ?? "";
    const waiting = await waitFor(client, runId, (run) => run.state === RunState.AWAITING_APPROVAL);
    return { runId, planHash: waiting.planHash };
  });

  // At rest the secret is ciphertext under home, never its value.
  const files = await readdir(home, { recursive: true, withFileTypes: true });
  for (const file of files.filter((entry) => entry.isFile())) {
    const content = await readFile(join(file.parentPath, file.name));
    assert.ok(!content.includes(secret), `${file.name} holds the secret in plain text`);
  }

  await withEmbedded(home, async (client) => {
    await client.decideApproval({
      tenant: "default",
      runId,
      approve: true,
      token: {
        subject: "alice",
        tenant: "default",
        scopes: ["packs.approve"],
        runId,
        gateId: "release",
        planHash,
        tokenId: "jti:restart-secrets",
      },
    });
    const run = await waitFor(client, runId, (candidate) =>
      [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED].includes(candidate.state),
    );
    const deploy = run.steps.find((step) => step.id === "deploy");
    assert.equal(deploy?.state, StepState.SUCCEEDED, deploy?.reason ?? "no deploy step");
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  });
});
