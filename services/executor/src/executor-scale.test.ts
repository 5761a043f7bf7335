/**
 * Distribution and ordering on real Postgres and Redis: a map spread over three worker
 * processes, 100 concurrent runs, priority order and per-tenant concurrency limits.
 *
 * One API-only executor (RPCs + reconciler, no worker) serves the whole file; each part attaches
 * the workers it needs and detaches them again, so the queue has exactly the consumers the test
 * says.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunState } from "@packrun/proto/executor/v1";
import { stepSharedDir } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { Executor } from "./rpc/executor-server.ts";
import type { AttemptRow } from "./rpc/run-service.ts";
import {
  type ExecutorStack,
  packManifest,
  startExecutorStack,
  type WorkerProcess,
} from "./testing/executor-stack.ts";
import { eventually } from "./testing/processes.ts";

const pack = packManifest;

let stack: ExecutorStack;
let scratch: string;
beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  scratch = await mkdtemp(join(tmpdir(), "packrun-scale-"));
});
afterAll(async () => {
  await stack.close();
  await rm(scratch, { recursive: true, force: true });
});

async function attempts(runIds: readonly string[]): Promise<AttemptRow[]> {
  return (
    await stack.database.query<AttemptRow>(
      "SELECT run_id, step_id, attempt, state, worker_id, started_at, finished_at FROM step_attempts WHERE run_id = ANY($1) ORDER BY started_at",
      [runIds],
    )
  ).rows;
}

/** Waits (polling Postgres) until every run is terminal; returns their states. */
async function waitForAll(runIds: readonly string[], timeoutMs: number): Promise<string[]> {
  await eventually(
    `${runIds.length} runs to finish`,
    async () => {
      const open = (
        await stack.database.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM runs WHERE id = ANY($1) AND (state NOT IN ('succeeded', 'failed', 'cancelled') OR EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.id AND s.state = 'running'))",
          [runIds],
        )
      ).rows[0]?.n;
      return open === 0;
    },
    {
      timeoutMs,
      intervalMs: 200,
      describe: async () =>
        JSON.stringify(
          (
            await stack.database.query(
              "SELECT state, count(*)::int AS n FROM runs WHERE id = ANY($1) GROUP BY state",
              [runIds],
            )
          ).rows,
        ),
    },
  );
  return (
    await stack.database.query<{ state: string }>("SELECT state FROM runs WHERE id = ANY($1)", [
      runIds,
    ])
  ).rows.map((row) => row.state);
}

describe("three worker processes share the work", () => {
  let processes: WorkerProcess[] = [];
  let local: Executor | undefined;
  beforeAll(async () => {
    processes = await Promise.all([
      stack.spawnWorker({ concurrency: 3 }),
      stack.spawnWorker({ concurrency: 3 }),
    ]);
    local = await stack.addExecutor({
      serve: false,
      worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 3 },
    });
  });
  afterAll(async () => {
    for (const worker of processes) worker.child.kill("SIGTERM");
    const exits = await Promise.all(processes.map((worker) => worker.exited));
    await local?.close(5000);
    assert.deepEqual(
      exits.map((exit) => exit.code),
      [0, 0],
      "worker processes drain and exit 0",
    );
  });

  test("a map of 50 items spreads over the worker processes; each child runs exactly once", async () => {
    const dir = await stepSharedDir("map-");
    const items = Array.from({ length: 50 }, (_, n) => `item-${n}`);
    const id = await stack.submit(
      pack(
        "fan-out",
        `  inputs: [{name: items, type: array}, {name: dir, type: string}]
  steps:
    - id: scan
      map:
        items: "{{ inputs.items }}"
        step:
          id: one
          run:
            uses: builtin:shell
            with:
              env: {D: "{{ inputs.dir }}", ITEM: "{{ item }}"}
              script: 'echo "$ITEM" >> "$D/seen"; sleep 0.2'
`,
      ),
      { inputs: { items, dir } },
    );
    const run = await stack.waitFor(id, undefined, { timeoutMs: 90_000 });
    assert.equal(run.state, RunState.SUCCEEDED, run.reason);
    const children = run.steps.filter((step) => step.parentId === "scan");
    assert.equal(children.length, 50);

    const seen = (await readFile(join(dir, "seen"), "utf8")).split("\n").filter(Boolean);
    assert.deepEqual(seen.sort(), [...items].sort(), "every item ran exactly once");
    const rows = await attempts([id]);
    assert.equal(rows.length, 50, "one attempt per child");
    assert.ok(rows.every((row) => row.state === "succeeded"));
    assert.equal(new Set(rows.map((row) => row.step_id)).size, 50);
    const workers = new Map<string, number>();
    for (const row of rows) workers.set(row.worker_id, (workers.get(row.worker_id) ?? 0) + 1);
    console.info(`children per worker: ${JSON.stringify(Object.fromEntries(workers))}`);
    assert.ok(workers.size >= 2, `children ran on ${JSON.stringify([...workers])}`);
    const processIds = new Set(processes.map((worker) => worker.workerId));
    assert.ok(
      [...workers.keys()].some((worker) => processIds.has(worker)),
      "the worker processes took part",
    );
  });

  test("100 concurrent runs complete, every step accounted for exactly once", async () => {
    const manifest = pack(
      "hundred",
      `  steps:
    - id: first
      run: {uses: builtin:noop}
    - id: second
      run: {uses: builtin:shell, with: {argv: ["true"]}}
`,
    );
    const ids = await Promise.all(Array.from({ length: 100 }, () => stack.submit(manifest)));
    assert.equal(new Set(ids).size, 100);
    const states = await waitForAll(ids, 110_000);
    assert.deepEqual(
      states.filter((state) => state !== "succeeded"),
      [],
    );
    const steps = (
      await stack.database.query<{ state: string; n: number }>(
        "SELECT state, count(*)::int AS n FROM steps WHERE run_id = ANY($1) GROUP BY state",
        [ids],
      )
    ).rows;
    assert.deepEqual(steps, [{ state: "succeeded", n: 200 }]);
    const perStep = (
      await stack.database.query<{ total: number; succeeded: number; n: number }>(
        `SELECT total, succeeded, count(*)::int AS n FROM (
           SELECT count(a.*)::int AS total, count(a.*) FILTER (WHERE a.state = 'succeeded')::int AS succeeded
             FROM steps s LEFT JOIN step_attempts a ON a.run_id = s.run_id AND a.step_id = s.step_id
            WHERE s.run_id = ANY($1) GROUP BY s.run_id, s.step_id) per_step
         GROUP BY total, succeeded`,
        [ids],
      )
    ).rows;
    assert.deepEqual(perStep, [{ total: 1, succeeded: 1, n: 200 }]);
  });
});

test("with one busy worker, a high-priority run starts before low-priority runs queued earlier", async () => {
  const dir = await stepSharedDir("priority-");
  const worker = await stack.addExecutor({
    serve: false,
    worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 1 },
  });
  try {
    const blocker = await stack.submit(
      pack(
        "blocker",
        `  inputs: [{name: dir, type: string}]
  steps:
    - id: hold
      run: {uses: builtin:shell, with: {script: 'while [ ! -e "$D/go" ]; do sleep 0.05; done', env: {D: "{{ inputs.dir }}"}}}
`,
      ),
      { inputs: { dir } },
    );
    await stack.waitFor(blocker, (run) => run.steps[0]?.attempts.length === 1);
    const quick = (name: string) =>
      pack(name, "  steps:\n    - id: only\n      run: {uses: builtin:noop}\n");
    const low: string[] = [];
    for (let n = 0; n < 3; n++) low.push(await stack.submit(quick("low"), { priority: 0 }));
    const high = await stack.submit(quick("high"), { priority: 10 });
    await writeFile(join(dir, "go"), "");
    const states = await waitForAll([blocker, ...low, high], 60_000);
    assert.ok(states.every((state) => state === "succeeded"));

    const order = (await attempts([...low, high])).map((row) => row.run_id);
    assert.equal(order[0], high, "the high-priority run was claimed first");
    assert.deepEqual(order.slice(1), low, "then the low-priority runs, in submission order");
  } finally {
    await worker.close(5000);
  }
});

test("a tenant's concurrency limit keeps its steps apart without dropping any; other tenants proceed", async () => {
  const worker = await stack.addExecutor({
    serve: false,
    worker: { leaseMs: 3000, killGraceMs: 1000, concurrency: 4, tenantConcurrency: 1 },
  });
  try {
    const sleeper = pack(
      "sleeper",
      "  steps:\n    - id: nap\n      run: {uses: builtin:shell, with: {argv: [sleep, '0.7']}}\n",
    );
    const limited = await Promise.all(
      [0, 1, 2].map(() => stack.submit(sleeper, { tenant: "tenant-a" })),
    );
    const other = await stack.submit(sleeper, { tenant: "tenant-b" });
    const states = await waitForAll([...limited, other], 60_000);
    assert.ok(
      states.every((state) => state === "succeeded"),
      "nothing was dropped",
    );

    const rows = await attempts([...limited, other]);
    assert.equal(rows.length, 4, "one attempt per run: deferred work is not retried");
    const interval = (row: AttemptRow) =>
      [row.started_at.getTime(), row.finished_at?.getTime() ?? Number.POSITIVE_INFINITY] as const;
    const a = rows.filter((row) => row.run_id !== other).map(interval);
    for (let i = 1; i < a.length; i++) {
      const [previous, current] = [a[i - 1], a[i]];
      assert.ok(
        previous !== undefined && current !== undefined && current[0] >= previous[1],
        `tenant-a steps overlap: ${JSON.stringify(a)}`,
      );
    }
    // tenant-b did not wait for tenant-a: its step ran alongside tenant-a's first one.
    const b = interval(rows.find((row) => row.run_id === other) as AttemptRow);
    const first = a[0] ?? [0, 0];
    assert.ok(
      b[0] < first[1] && first[0] < b[1],
      `tenant-b ${JSON.stringify(b)}, tenant-a ${JSON.stringify(a)}`,
    );
  } finally {
    await worker.close(5000);
  }
});
