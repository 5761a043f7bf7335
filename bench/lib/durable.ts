/**
 * What the peers and the floor runner do per run, so that they pay for the same durable writes
 * packrun pays for: one commit to create the run (run row + step rows), one commit when a step
 * starts, one when it ends, one when the run ends (3 steps: 8 commits), on the same PostgreSQL
 * with synchronous_commit on. And the step itself: spawn the argv with both pipes drained.
 */
import { spawn } from "node:child_process";
import type pg from "pg";

/** The bench tables, created in each peer's own database. */
export const BENCH_SCHEMA = `
CREATE TABLE IF NOT EXISTS bench_runs (
  id text PRIMARY KEY,
  steps int NOT NULL,
  remaining int NOT NULL,
  state text NOT NULL DEFAULT 'queued',
  submitted_ms double precision NOT NULL,
  finished_ms double precision
);
CREATE TABLE IF NOT EXISTS bench_steps (
  run_id text NOT NULL REFERENCES bench_runs (id),
  idx int NOT NULL,
  state text NOT NULL DEFAULT 'pending',
  attempts int NOT NULL DEFAULT 0,
  successes int NOT NULL DEFAULT 0,
  started_ms double precision,
  finished_ms double precision,
  PRIMARY KEY (run_id, idx)
);
`;

/** A step's job: which run, which step, what to spawn. `map` steps run in any order. */
export interface StepJob {
  runId: string;
  idx: number;
  /** argv of every step of the run (sequential runs) or of this item (map). */
  argv: string[][];
  map?: boolean;
  maxAttempts: number;
}

type Queryable = Pick<pg.Pool, "query">;

/** Commit 1: the run and its step rows. */
export async function createRun(
  db: Queryable,
  runId: string,
  steps: number,
  submittedMs: number,
): Promise<void> {
  await db.query(
    `WITH r AS (INSERT INTO bench_runs (id, steps, remaining, submitted_ms) VALUES ($1, $2, $2, $3) RETURNING id)
     INSERT INTO bench_steps (run_id, idx) SELECT r.id, i FROM r, generate_series(0, $2 - 1) AS i`,
    [runId, steps, submittedMs],
  );
}

/** One commit: the step is running (attempt n). */
export async function startStep(
  db: Queryable,
  job: StepJob,
  attempt: number,
  startedMs: number,
): Promise<void> {
  await db.query(
    "UPDATE bench_steps SET state = 'running', attempts = $3, started_ms = $4 WHERE run_id = $1 AND idx = $2",
    [job.runId, job.idx, attempt, startedMs],
  );
}

/** One commit: the step failed (the queue retries it). */
export async function failStep(db: Queryable, job: StepJob, finishedMs: number): Promise<void> {
  await db.query(
    "UPDATE bench_steps SET state = 'failed', finished_ms = $3 WHERE run_id = $1 AND idx = $2",
    [job.runId, job.idx, finishedMs],
  );
}

/**
 * One commit: the step succeeded. For a map item the run's remaining count goes down in the
 * same statement; returns the remaining count (map) or -1.
 */
export async function finishStep(
  db: Queryable,
  job: StepJob,
  finishedMs: number,
  extraSql = "",
  extraParams: unknown[] = [],
): Promise<number> {
  if (job.map) {
    const result = await db.query<{ remaining: number }>(
      `WITH s AS (UPDATE bench_steps SET state = 'succeeded', successes = successes + 1, finished_ms = $3 WHERE run_id = $1 AND idx = $2)
       UPDATE bench_runs SET remaining = remaining - 1 WHERE id = $1 RETURNING remaining`,
      [job.runId, job.idx, finishedMs],
    );
    return result.rows[0]?.remaining ?? -1;
  }
  await db.query(
    `WITH s AS (UPDATE bench_steps SET state = 'succeeded', successes = successes + 1, finished_ms = $3 WHERE run_id = $1 AND idx = $2 RETURNING 1)
     SELECT 1 FROM s${extraSql}`,
    [job.runId, job.idx, finishedMs, ...extraParams],
  );
  return -1;
}

/** Last commit: the run succeeded; NOTIFY bench_done (delivered on commit). */
export async function finishRun(db: Queryable, runId: string, finishedMs: number): Promise<void> {
  await db.query(
    `WITH r AS (UPDATE bench_runs SET state = 'succeeded', finished_ms = $2 WHERE id = $1 RETURNING id)
     SELECT pg_notify('bench_done', id) FROM r`,
    [runId, finishedMs],
  );
}

/** Spawns argv with stdin ignored and stdout/stderr piped and drained; resolves the exit code. */
export function spawnStep(argv: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = argv;
    if (command === undefined) {
      reject(new Error("empty argv"));
      return;
    }
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Timestamps and counts of one finished run, as every system reports them (epoch ms). */
export interface RunTimes {
  id: string;
  state: string;
  submittedMs: number;
  finishedMs: number;
  /** When the submission call returned (the run is stored and queued). */
  acceptedMs?: number;
  /** When the client was told the run had finished (closed loops only). */
  noticedMs?: number;
  steps: { startedMs: number; finishedMs: number; attempts: number; successes: number }[];
}

/** Reads runs back from the bench tables of a peer (after the measurement window). */
export async function readRuns(db: Queryable, runIds: readonly string[]): Promise<RunTimes[]> {
  const runs = await db.query<{
    id: string;
    state: string;
    submitted_ms: number;
    finished_ms: number | null;
  }>("SELECT id, state, submitted_ms, finished_ms FROM bench_runs WHERE id = ANY($1)", [runIds]);
  const steps = await db.query<{
    run_id: string;
    idx: number;
    attempts: number;
    successes: number;
    started_ms: number | null;
    finished_ms: number | null;
  }>(
    "SELECT run_id, idx, attempts, successes, started_ms, finished_ms FROM bench_steps WHERE run_id = ANY($1) ORDER BY run_id, idx",
    [runIds],
  );
  const byRun = new Map<string, RunTimes["steps"]>();
  for (const row of steps.rows) {
    const list = byRun.get(row.run_id) ?? [];
    list.push({
      startedMs: row.started_ms ?? Number.NaN,
      finishedMs: row.finished_ms ?? Number.NaN,
      attempts: row.attempts,
      successes: row.successes,
    });
    byRun.set(row.run_id, list);
  }
  return runs.rows.map((row) => ({
    id: row.id,
    state: row.state,
    submittedMs: row.submitted_ms,
    finishedMs: row.finished_ms ?? Number.NaN,
    steps: byRun.get(row.id) ?? [],
  }));
}

/** Options of every BullMQ step job: retries configured, immediate retry, no job history kept. */
export function bullmqJobOptions(maxAttempts: number) {
  return {
    attempts: maxAttempts,
    backoff: { type: "fixed", delay: 0 },
    removeOnComplete: true,
    removeOnFail: true,
  };
}
