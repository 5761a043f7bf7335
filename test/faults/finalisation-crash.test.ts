/**
 * Issue 8, item 9: the executor crashes (SIGKILL) between a run's last step and its
 * finalisation, at three points made deterministic from the outside:
 *
 *  A. while the last step is exiting (its result not recorded yet);
 *  B. after the run is terminal in Postgres, before any of its last events reached evidence
 *     (evidence is SIGSTOPped meanwhile);
 *  C. after evidence signed the attestation, before the executor recorded `finalized_at`
 *     (the test holds the run's row lock, so that UPDATE waits until the process is killed).
 *
 * A new executor process takes over each time. Afterwards: exactly one terminal state and one
 * terminal event, one attestation (whose steps and attempts match the database), at most one
 * succeeded attempt per step, a gapless log, and a bundle that verifies.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { generateSigningKeyPem, verifyBundle } from "@packrun/attestation";
import { type Event, EvidenceService } from "@packrun/proto/evidence/v1";
import { RunState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import pg from "pg";
import { afterAll, beforeAll, test } from "vitest";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
} from "../../services/executor/src/testing/executor-stack.ts";
import { eventually } from "../../services/executor/src/testing/processes.ts";
import {
  freePort,
  type ServiceProcess,
  startEvidenceProcess,
  startExecutorProcess,
} from "./support/children.ts";

let stack: ExecutorStack;
let dir: string;
let evidence: ServiceProcess;
let executor: ServiceProcess | undefined;
let generation = 0;

beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  dir = await mkdtemp(join(tmpdir(), "packrun-finalisation-"));
  const signingKeyFile = join(dir, "signing.pem");
  await writeFile(signingKeyFile, generateSigningKeyPem("ed25519"), { mode: 0o600 });
  evidence = await startEvidenceProcess({
    databaseUrl: stack.databaseUrl,
    port: await freePort(),
    artifactRoot: join(dir, "artifacts"),
    signingKeyFile,
  });
  executor = await newExecutor();
});
afterAll(async () => {
  if (evidence.child.pid !== undefined) process.kill(evidence.child.pid, "SIGCONT");
  await executor?.kill();
  await evidence.kill();
  await stack.close();
  await rm(dir, { recursive: true, force: true });
});

function newExecutor(): Promise<ServiceProcess> {
  generation++;
  return startExecutorProcess(stack, {
    evidenceUrl: evidence.url,
    workerId: `finalisation-${generation}`,
  });
}

const pack = (name: string) =>
  packManifest(
    name,
    `  inputs: [{name: dir, type: string}]
  steps:
    - id: first
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo first']}}
    - id: last
      run: {uses: builtin:shell, with: {env: {D: "{{ inputs.dir }}"}, argv: [sh, -c, 'echo last; touch "$D/done"; sleep 0.5']}}
`,
  );

async function row<T extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<T> {
  const result = await stack.database.query<T>(sql, params);
  return result.rows[0] as T;
}

async function withEvidence<T>(
  work: (client: ReturnType<typeof createClient<typeof EvidenceService>>) => Promise<T>,
): Promise<T> {
  const sessions = new Http2SessionManager(evidence.url);
  try {
    return await work(
      createClient(
        EvidenceService,
        createGrpcTransport({ baseUrl: evidence.url, sessionManager: sessions }),
      ),
    );
  } finally {
    sessions.abort();
  }
}

/** Submits a run and waits until its last step is running and about to exit. */
async function runUntilLastStepEnds(name: string): Promise<{ id: string; done: string }> {
  const runDir = await stepSharedDir(`${name}-`);
  const id = await stack.submit(pack(name), { inputs: { dir: runDir } });
  const done = join(runDir, "done");
  await eventually("the last step finishing", async () => existsSync(done), {
    timeoutMs: 30_000,
    intervalMs: 10,
  });
  return { id, done };
}

/** The invariants after any crash: one terminal state, one attestation, nothing twice. */
async function checkFinalisedOnce(id: string): Promise<void> {
  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  await eventually(
    "the run finalised",
    async () =>
      (
        await row<{ done: boolean }>(
          "SELECT finalized_at IS NOT NULL AS done FROM runs WHERE id = $1",
          [id],
        )
      ).done,
    { timeoutMs: 30_000 },
  );
  const succeeded = await stack.database.query<{ step_id: string; n: number }>(
    "SELECT step_id, count(*)::int AS n FROM step_attempts WHERE run_id = $1 AND state = 'succeeded' GROUP BY 1 ORDER BY 1",
    [id],
  );
  assert.deepEqual(
    succeeded.rows.map((r) => [r.step_id, r.n]),
    [
      ["first", 1],
      ["last", 1],
    ],
    "every step succeeded exactly once",
  );
  const attestations = await row<{ n: number }>(
    "SELECT count(*)::int AS n FROM evidence.attestations WHERE run_id = $1",
    [id],
  );
  assert.equal(attestations.n, 1, "one attestation");

  const { events, bundle, statement } = await withEvidence(async (client) => {
    const listed: Event[] = [];
    let afterSequence = 0n;
    for (;;) {
      const page = await client.listEvents({
        tenant: "acme",
        runId: id,
        afterSequence,
        pageSize: 500,
      });
      listed.push(...page.events);
      if (page.nextAfterSequence === 0n || page.events.length === 0) break;
      afterSequence = page.nextAfterSequence;
    }
    const attestation = await client.getAttestation({ tenant: "acme", runId: id });
    const envelope = JSON.parse(attestation.attestation?.envelopeJson ?? "{}") as {
      payload: string;
    };
    const chunks: Uint8Array[] = [];
    for await (const part of client.getBundle({ tenant: "acme", runId: id }))
      chunks.push(part.chunk);
    return {
      events: listed,
      bundle: Buffer.concat(chunks),
      statement: JSON.parse(Buffer.from(envelope.payload, "base64").toString("utf8")) as {
        predicate: { runId: string; steps: { id: string; status: string; attempts: number }[] };
      },
    };
  });
  assert.deepEqual(
    events.map((event) => Number(event.sequence)),
    events.map((_, i) => i + 1),
    "gapless",
  );
  const terminal = events.filter((event) => /^run\.(succeeded|failed|cancelled)$/.test(event.type));
  assert.deepEqual(
    terminal.map((event) => event.type),
    ["run.succeeded"],
    "exactly one terminal event",
  );
  assert.equal(events.at(-1)?.type, "run.succeeded");
  assert.equal(statement.predicate.runId, id);
  const attempts = await stack.database.query<{ step_id: string; attempt: number; state: string }>(
    "SELECT step_id, attempt, state FROM steps WHERE run_id = $1 ORDER BY step_id",
    [id],
  );
  for (const step of attempts.rows) {
    const attested = statement.predicate.steps.find((s) => s.id === step.step_id);
    assert.equal(attested?.status, step.state, `${step.step_id} attested as in the database`);
    assert.equal(attested?.attempts, step.attempt, `${step.step_id} attempts`);
  }
  // Crash consistency, not origin, is under test here: the bundle's own key is enough.
  const report = await verifyBundle(bundle, { integrityOnly: true });
  assert.equal(report.ok, true, JSON.stringify(report.failures));
}

test("A: killed while the last step exits", async () => {
  const { id } = await runUntilLastStepEnds("crash-a");
  await executor?.kill();
  executor = await newExecutor();
  await checkFinalisedOnce(id);
  const last = await row<{ lost_attempts: number }>(
    "SELECT lost_attempts FROM steps WHERE run_id = $1 AND step_id = 'last'",
    [id],
  );
  assert.equal(last.lost_attempts, 1, "the interrupted attempt was lost and run again");
});

test("B: killed after the run is terminal, before its last events reached evidence", async () => {
  const pid = evidence.child.pid ?? 0;
  const { id } = await runUntilLastStepEnds("crash-b");
  process.kill(pid, "SIGSTOP");
  try {
    await eventually(
      "the run terminal in Postgres",
      async () =>
        (
          await row<{ settled: boolean }>(
            "SELECT settled_at IS NOT NULL AS settled FROM runs WHERE id = $1",
            [id],
          )
        ).settled,
      { timeoutMs: 30_000 },
    );
    assert.ok(
      (await row<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE run_id = $1", [id]))
        .n > 0,
      "the terminal events are still in the outbox",
    );
    await executor?.kill();
  } finally {
    process.kill(pid, "SIGCONT");
  }
  executor = await newExecutor();
  await checkFinalisedOnce(id);
});

test("C: killed after evidence signed the attestation, before finalized_at was recorded", async () => {
  const pid = evidence.child.pid ?? 0;
  const { id } = await runUntilLastStepEnds("crash-c");
  process.kill(pid, "SIGSTOP");
  const blocker = new pg.Client({ connectionString: stack.databaseUrl });
  await blocker.connect();
  try {
    await eventually(
      "the run terminal in Postgres",
      async () =>
        (
          await row<{ settled: boolean }>(
            "SELECT settled_at IS NOT NULL AS settled FROM runs WHERE id = $1",
            [id],
          )
        ).settled,
      { timeoutMs: 30_000 },
    );
    // Hold the run's row: the executor's `UPDATE runs SET finalized_at` will wait for it.
    await blocker.query("BEGIN");
    await blocker.query("SELECT 1 FROM executor.runs WHERE id = $1 FOR UPDATE", [id]);
    process.kill(pid, "SIGCONT");
    await eventually(
      "evidence storing the attestation",
      async () =>
        (
          await row<{ n: number }>(
            "SELECT count(*)::int AS n FROM evidence.attestations WHERE run_id = $1",
            [id],
          )
        ).n === 1,
      { timeoutMs: 30_000 },
    );
    // Give the executor the moment it needs to reach its UPDATE, then kill it there.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(
      (
        await row<{ done: boolean }>(
          "SELECT finalized_at IS NOT NULL AS done FROM runs WHERE id = $1",
          [id],
        )
      ).done,
      false,
    );
    await executor?.kill();
  } finally {
    process.kill(pid, "SIGCONT");
    await blocker.query("ROLLBACK").catch(() => {});
    await blocker.end();
  }
  executor = await newExecutor();
  await checkFinalisedOnce(id);
});
