/**
 * Issue 8, item 11, first half: a step that floods stdout.
 *
 * A worker PROCESS runs two flooding steps (200 MB of one-byte lines from `yes`, and 200 MB of
 * 1000-byte lines) while another run prints a timestamped line every 100 ms. Checked: each flood
 * is capped with one marker line (by line count, then by bytes), the worker's resident memory
 * (VmRSS from /proc) stays bounded, and the other run's lines reach the database (the outbox the
 * evidence service is fed from) within a bound, compared with the same run alone.
 *
 * The never-reading SSE client is in log-stream-stall.test.ts (it needs the gateway).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { RunState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, test } from "vitest";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
  type WorkerProcess,
} from "../../services/executor/src/testing/executor-stack.ts";

let stack: ExecutorStack;
let worker: WorkerProcess;

beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  // A long lease: this machine is shared, and a lease lost under load is another fault.
  worker = await stack.spawnWorker({ concurrency: 4, leaseMs: 15_000 });
});
afterAll(() => stack.close());

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024;
}

const ticker = packManifest(
  "ticker",
  `  steps:
    - id: tick
      run: {uses: builtin:shell, with: {argv: [sh, -c, 'i=0; while [ $i -lt 40 ]; do echo "tick $(date +%s%3N)"; i=$((i+1)); sleep 0.1; done']}}
`,
);

/** The outbox's log lines: each row `o` is a chunk of one step's lines `l`. */
const outboxLines = "outbox o CROSS JOIN LATERAL jsonb_array_elements(o.event->'lines') AS l";

/**
 * Runs the ticker and returns, for each of its lines, how long after it was printed it was
 * first seen in the outbox (polled every 25 ms).
 */
async function tickerLatencies(): Promise<number[]> {
  const id = await stack.submit(ticker);
  const seen = new Map<string, number>();
  for (;;) {
    const rows = await stack.database.query<{ message: string }>(
      `SELECT l->>'message' AS message FROM ${outboxLines} WHERE o.run_id = $1 AND l->>'type' = 'log.stdout'`,
      [id],
    );
    const now = Date.now();
    for (const { message } of rows.rows) if (!seen.has(message)) seen.set(message, now);
    const run = (await stack.client.getRun({ tenant: "acme", runId: id })).run;
    if (run !== undefined && run.state !== RunState.RUNNING && run.state !== RunState.QUEUED) {
      if (seen.size >= 40) break;
    }
    await sleep(25);
  }
  return [...seen].map(([message, at]) => at - Number(message.replace("tick ", "")));
}

const max = (values: number[]) => values.reduce((a, b) => Math.max(a, b), 0);

test("floods are capped with a marker, the worker's memory stays bounded, another run's lines keep flowing", async () => {
  const pid = worker.child.pid ?? 0;
  const baseline = await tickerLatencies();
  const baselineRss = await rssMiB(pid);

  const flood = await stack.submit(
    packManifest(
      "flood",
      `  steps:
    - id: flood
      parallel:
        steps:
          - id: tiny-lines
            run: {uses: builtin:shell, with: {argv: [sh, -c, "yes | head -c 200000000"]}}
          - id: long-lines
            run: {uses: builtin:shell, with: {argv: [sh, -c, "head -c 200000000 /dev/zero | tr '\\\\0' x | fold -w 1000"]}}
`,
    ),
  );
  let peakRss = baselineRss;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakRss = Math.max(peakRss, await rssMiB(pid).catch(() => 0));
      await sleep(50);
    }
  })();
  // The ticker starts once the floods are well under way.
  await sleep(500);
  const during = await tickerLatencies();
  const run = await stack.waitFor(flood, undefined, { timeoutMs: 90_000 });
  sampling = false;
  await sampler;
  console.info(
    `worker RSS ${Math.round(baselineRss)} -> peak ${Math.round(peakRss)} MiB; ticker latency max ${max(baseline)} ms alone, ${max(during)} ms during the floods`,
  );

  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
  for (const step of run.steps.filter((s) => s.id !== "flood"))
    assert.equal(step.attempts.length, 1, `${step.id} ran once`);
  const markers = await stack.database.query<{ step: string; message: string }>(
    `SELECT o.event->>'stepId' AS step, l->>'message' AS message FROM ${outboxLines} WHERE o.run_id = $1 AND l->>'type' = 'log.system' ORDER BY 1`,
    [flood],
  );
  assert.deepEqual(
    markers.rows.map((row) => [row.step, row.message.replace(/\d+/, "N")]),
    [
      ["long-lines", "[packrun] output truncated after N bytes"],
      ["tiny-lines", "[packrun] output truncated after N lines"],
    ],
  );
  const counts = await stack.database.query<{ step: string; lines: number; bytes: number }>(
    `SELECT o.event->>'stepId' AS step, count(*)::int AS lines, sum(length(l->>'message') + 1)::int AS bytes
       FROM ${outboxLines} WHERE o.run_id = $1 AND l->>'type' = 'log.stdout' GROUP BY 1 ORDER BY 1`,
    [flood],
  );
  const [longLines, tinyLines] = counts.rows;
  assert.ok((longLines?.bytes ?? Infinity) <= 8 * 1024 * 1024, JSON.stringify(longLines));
  assert.equal(tinyLines?.lines, 100_000, "one-byte lines are capped by count");

  assert.ok(
    peakRss - baselineRss < 256,
    `worker RSS grew ${Math.round(peakRss - baselineRss)} MiB`,
  );
  assert.equal(during.length, 40, "every line of the other run arrived");
  assert.ok(max(during) < Math.max(3000, 4 * max(baseline)), `latency ${max(during)} ms`);
});
