/**
 * Issue 8, item 7: the evidence service is killed (SIGKILL) twice in the middle of a run and
 * restarted on the same address. The executor keeps the events in its outbox while evidence is
 * gone and resends them; afterwards the run's log is complete and gapless (sequence 1..n, every
 * line exactly once, in order, ending with the terminal event), the outbox is empty, and the
 * run is finalised with one attestation and a bundle that verifies.
 *
 * Evidence and the executor run as separate processes (support/*-process.ts); the planner and
 * the API executor the test talks to come from the executor test stack.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { generateSigningKeyPem, verifyBundle } from "@packrun/attestation";
import { type Event, EvidenceService } from "@packrun/proto/evidence/v1";
import { RunState } from "@packrun/proto/executor/v1";
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
let evidence: ServiceProcess | undefined;
let executor: ServiceProcess | undefined;
let evidenceSettings: Parameters<typeof startEvidenceProcess>[0];

beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  dir = await mkdtemp(join(tmpdir(), "packrun-evidence-restart-"));
  const signingKeyFile = join(dir, "signing.pem");
  await writeFile(signingKeyFile, generateSigningKeyPem("ed25519"), { mode: 0o600 });
  evidenceSettings = {
    databaseUrl: stack.databaseUrl,
    port: await freePort(),
    artifactRoot: join(dir, "artifacts"),
    signingKeyFile,
  };
  evidence = await startEvidenceProcess(evidenceSettings);
  executor = await startExecutorProcess(stack, {
    evidenceUrl: evidence.url,
    workerId: "evidence-restart-worker",
  });
});
afterAll(async () => {
  await executor?.kill();
  await evidence?.kill();
  await stack.close();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh client (a killed server leaves the old HTTP/2 session dead). */
async function withEvidence<T>(
  work: (client: ReturnType<typeof createClient<typeof EvidenceService>>) => Promise<T>,
): Promise<T> {
  const sessions = new Http2SessionManager(evidence?.url ?? "");
  try {
    return await work(
      createClient(
        EvidenceService,
        createGrpcTransport({ baseUrl: evidence?.url ?? "", sessionManager: sessions }),
      ),
    );
  } finally {
    sessions.abort();
  }
}

async function storedEvents(runId: string): Promise<Event[]> {
  return withEvidence(async (client) => {
    const events: Event[] = [];
    let after = 0n;
    for (;;) {
      const page = await client
        .listEvents({ tenant: "acme", runId, afterSequence: after, pageSize: 500 })
        .catch(() => undefined);
      if (page === undefined) return events;
      events.push(...page.events);
      if (page.nextAfterSequence === 0n || page.events.length === 0) return events;
      after = page.nextAfterSequence;
    }
  });
}

async function outboxRows(runId: string): Promise<number> {
  const result = await stack.database.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM outbox WHERE run_id = $1",
    [runId],
  );
  return result.rows[0]?.n ?? 0;
}

test("evidence killed twice mid-run: events buffered and resent, the log is gapless and complete", async () => {
  const lines = 60;
  const id = await stack.submit(
    packManifest(
      "evidence-restart",
      `  steps:
    - id: talk
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'i=1; while [ $i -le ${lines} ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done']}}
    - id: after
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo after']}}
`,
    ),
  );

  for (const killAfter of [10, 35]) {
    await eventually(
      `${killAfter} events stored before the kill`,
      async () => (await storedEvents(id)).length >= killAfter,
      { timeoutMs: 30_000 },
    );
    await evidence?.kill();
    // The run goes on; its events wait in the outbox.
    const buffered = await eventually(
      "events waiting in the outbox while evidence is down",
      async () => {
        const n = await outboxRows(id);
        return n >= 5 ? n : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.ok(buffered >= 5);
    await sleep(1000);
    evidence = await startEvidenceProcess(evidenceSettings);
  }

  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  await eventually(
    "the run finalised",
    async () =>
      (
        await stack.database.query<{ done: boolean }>(
          "SELECT finalized_at IS NOT NULL AS done FROM runs WHERE id = $1",
          [id],
        )
      ).rows[0]?.done === true,
    { timeoutMs: 30_000 },
  );
  assert.equal(await outboxRows(id), 0, "everything acknowledged was deleted from the outbox");

  const events = await storedEvents(id);
  assert.deepEqual(
    events.map((event) => Number(event.sequence)),
    events.map((_, index) => index + 1),
    "sequence is gapless from 1",
  );
  assert.equal(events.at(-1)?.type, "run.succeeded");
  assert.equal(events.filter((event) => event.type.startsWith("run.succeeded")).length, 1);
  const talk = events
    .filter((event) => event.type === "log.stdout" && event.stepId === "talk")
    .map((event) => event.message);
  assert.deepEqual(
    talk,
    Array.from({ length: lines }, (_, i) => `line ${i + 1}`),
    "every line exactly once, in order",
  );
  const transitions = events
    .filter((event) => event.type.startsWith("step."))
    .map((event) => `${event.stepId} ${event.type}`);
  assert.equal(new Set(transitions).size, transitions.length, `no duplicate: ${transitions}`);

  const bundle = await withEvidence(async (client) => {
    const attestation = await client.getAttestation({ tenant: "acme", runId: id });
    assert.ok(attestation.attestation !== undefined);
    const chunks: Uint8Array[] = [];
    for await (const part of client.getBundle({ tenant: "acme", runId: id }))
      chunks.push(part.chunk);
    return Buffer.concat(chunks);
  });
  // Crash consistency, not origin, is under test here: the bundle's own key is enough.
  const report = await verifyBundle(bundle, { integrityOnly: true });
  assert.equal(report.ok, true, JSON.stringify(report.failures));
});

test("evidence killed during a log flood: the chunks wait in the outbox, no line is lost or reordered", async () => {
  const bursts = 20;
  const perBurst = 1000;
  const id = await stack.submit(
    packManifest(
      "evidence-flood",
      `  steps:
    - id: flood
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'i=0; while [ $i -lt ${bursts} ]; do seq $((i*${perBurst}+1)) $((i*${perBurst}+${perBurst})); i=$((i+1)); sleep 0.2; done']}}
`,
    ),
  );
  await eventually(
    "the flood's first lines stored",
    async () => (await storedEvents(id)).length >= 1000,
    { timeoutMs: 30_000 },
  );
  await evidence?.kill();
  // Lines keep coming while evidence is down: they wait in the outbox as chunks, not lines.
  const waiting = await eventually(
    "the flood waiting in the outbox",
    async () => {
      const result = await stack.database.query<{ rows: number; lines: number }>(
        `SELECT count(*)::int AS rows,
                coalesce(sum(jsonb_array_length(event->'lines')), 0)::int AS lines
           FROM outbox WHERE run_id = $1 AND event->>'type' = 'log.chunk'`,
        [id],
      );
      const counts = result.rows[0];
      return counts !== undefined && counts.lines >= 3 * perBurst ? counts : undefined;
    },
    { timeoutMs: 20_000 },
  );
  assert.ok(waiting.rows * 10 < waiting.lines, `${waiting.rows} rows for ${waiting.lines} lines`);
  evidence = await startEvidenceProcess(evidenceSettings);

  const run = await stack.waitFor(id, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  await eventually("the outbox drained", async () => (await outboxRows(id)) === 0, {
    timeoutMs: 30_000,
  });
  const events = await storedEvents(id);
  assert.deepEqual(
    events.map((event) => Number(event.sequence)),
    events.map((_, index) => index + 1),
    "sequence is gapless from 1",
  );
  assert.equal(events.at(-1)?.type, "run.succeeded");
  const flood = events.filter((event) => event.type === "log.stdout").map((e) => e.message);
  assert.equal(flood.length, bursts * perBurst);
  assert.ok(
    flood.every((message, i) => message === String(i + 1)),
    "every line exactly once, in order",
  );
}, 120_000);
