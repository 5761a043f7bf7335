/**
 * A peer's worker process (BullMQ or graphile-worker) or the floor runner, started by the
 * benchmark with its settings as JSON in BENCH_PEER. Prints `{"event":"ready"}` once it takes
 * work. Each step job: one commit (step running), spawn the step, one commit (step ended, plus
 * the next step's job in graphile-worker's case), and after the last step one commit (run ended,
 * NOTIFY bench_done). See lib/durable.ts.
 *
 * The floor runner takes commands as JSON lines on stdin and answers `{"event":"done"}`:
 *   {"cmd":"closed","runs":[ids],"window":8,"argv":[[...],...]}   keep `window` runs in flight
 *   {"cmd":"burst","runs":[ids],"slots":8,"argv":[[...],...]}     all runs at once, `slots` steps at a time
 *   {"cmd":"map","run":"id","items":2000,"slots":4,"argv":[...]}  one run with `items` parallel steps
 */
import { createInterface } from "node:readline";
import { Queue, Worker } from "bullmq";
import { Logger, run as runGraphile } from "graphile-worker";
import { Redis } from "ioredis";
import pg from "pg";
import {
  bullmqJobOptions,
  createRun,
  failStep,
  finishRun,
  finishStep,
  type StepJob,
  spawnStep,
  startStep,
} from "./lib/durable.ts";
import { isolatedStepRunner } from "./lib/isolated-step.ts";
import { nowMs } from "./lib/util.ts";

export interface PeerConfig {
  system: "bullmq" | "graphile" | "floor";
  databaseUrl: string;
  redisUrl?: string;
  queueName?: string;
  concurrency: number;
  /** Run steps through the executor's step runtime in this sandbox mode (workload 8). */
  isolation?: "open" | "sealed";
  /** Where isolated steps get their workdirs. */
  workRoot?: string;
}

const config = JSON.parse(process.env.BENCH_PEER ?? "{}") as PeerConfig;
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.concurrency + 4 });
const isolatedStep =
  config.isolation === undefined
    ? undefined
    : await isolatedStepRunner(config.isolation, config.workRoot ?? "/tmp/bench-peer-steps");

/** Runs one attempt of one step job; throws when the step failed (the queue retries). */
async function runStep(
  job: StepJob,
  attempt: number,
  afterSuccess: (job: StepJob) => Promise<void>,
) {
  await startStep(pool, job, attempt, nowMs());
  const argv = job.map ? job.argv[0] : job.argv[job.idx];
  const code = await (isolatedStep ? isolatedStep.run(argv ?? []) : spawnStep(argv ?? []));
  if (code !== 0) {
    await failStep(pool, job, nowMs());
    throw new Error(`step ${job.runId}/${job.idx} exited with code ${code}`);
  }
  await afterSuccess(job);
}

async function startBullmq(): Promise<() => Promise<void>> {
  const connection = new Redis(config.redisUrl ?? "", { maxRetriesPerRequest: null });
  const name = config.queueName ?? "bench";
  const queue = new Queue<StepJob>(name, { connection });
  const worker = new Worker<StepJob>(
    name,
    async (job) => {
      await runStep(job.data, job.attemptsMade + 1, async (data) => {
        if (data.map) {
          if ((await finishStep(pool, data, nowMs())) === 0)
            await finishRun(pool, data.runId, nowMs());
        } else if (data.idx + 1 < data.argv.length) {
          await finishStep(pool, data, nowMs());
          await queue.add(
            "step",
            { ...data, idx: data.idx + 1 },
            bullmqJobOptions(data.maxAttempts),
          );
        } else {
          await finishStep(pool, data, nowMs());
          await finishRun(pool, data.runId, nowMs());
        }
      });
    },
    { connection, concurrency: config.concurrency },
  );
  await worker.waitUntilReady();
  return async () => {
    await worker.close();
    await queue.close();
    connection.disconnect();
  };
}

async function startGraphile(): Promise<() => Promise<void>> {
  const runner = await runGraphile({
    pgPool: pool,
    concurrency: config.concurrency,
    noHandleSignals: true,
    logger: new Logger(() => () => {}),
    taskList: {
      step: async (payload, helpers) => {
        const job = payload as StepJob;
        await runStep(job, helpers.job.attempts, async (data) => {
          if (data.map) {
            if ((await finishStep(pool, data, nowMs())) === 0)
              await finishRun(pool, data.runId, nowMs());
          } else if (data.idx + 1 < data.argv.length) {
            // The next step's job is added in the same transaction as the step's end.
            await finishStep(
              pool,
              data,
              nowMs(),
              " CROSS JOIN LATERAL graphile_worker.add_job('step', $4::json, max_attempts => $5::int)",
              [JSON.stringify({ ...data, idx: data.idx + 1 }), data.maxAttempts],
            );
          } else {
            await finishStep(pool, data, nowMs());
            await finishRun(pool, data.runId, nowMs());
          }
        });
      },
    },
  });
  return () => runner.stop();
}

/** A counting semaphore. */
function slots(count: number) {
  let free = count;
  const waiting: (() => void)[] = [];
  return {
    async acquire() {
      if (free > 0) {
        free--;
        return;
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    },
    release() {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}

/** The floor: the same run and the same commits, called directly, no queue. */
async function floorRun(runId: string, argv: string[][], gate?: ReturnType<typeof slots>) {
  await createRun(pool, runId, argv.length, nowMs());
  for (let idx = 0; idx < argv.length; idx++) {
    await gate?.acquire();
    try {
      await runStep({ runId, idx, argv, maxAttempts: 1 }, 1, (job) =>
        finishStep(pool, job, nowMs()).then(() => {}),
      );
    } finally {
      gate?.release();
    }
  }
  await finishRun(pool, runId, nowMs());
}

type FloorCommand =
  | { cmd: "closed"; runs: string[]; window: number; argv: string[][] }
  | { cmd: "burst"; runs: string[]; slots: number; argv: string[][] }
  | { cmd: "map"; run: string; items: number; slots: number; argv: string[] };

async function floorCommand(command: FloorCommand): Promise<void> {
  if (command.cmd === "closed") {
    let next = 0;
    await Promise.all(
      Array.from({ length: command.window }, async () => {
        for (;;) {
          const runId = command.runs[next++];
          if (runId === undefined) return;
          await floorRun(runId, command.argv);
        }
      }),
    );
  } else if (command.cmd === "burst") {
    const gate = slots(command.slots);
    await Promise.all(command.runs.map((runId) => floorRun(runId, command.argv, gate)));
  } else {
    const gate = slots(command.slots);
    await createRun(pool, command.run, command.items, nowMs());
    await Promise.all(
      Array.from({ length: command.items }, async (_, idx) => {
        await gate.acquire();
        try {
          const job: StepJob = {
            runId: command.run,
            idx,
            argv: [command.argv],
            map: true,
            maxAttempts: 1,
          };
          await runStep(job, 1, async (data) => {
            if ((await finishStep(pool, data, nowMs())) === 0)
              await finishRun(pool, data.runId, nowMs());
          });
        } finally {
          gate.release();
        }
      }),
    );
  }
}

let stop: () => Promise<void> = async () => {};
if (config.system === "bullmq") stop = await startBullmq();
else if (config.system === "graphile") stop = await startGraphile();
else {
  createInterface({ input: process.stdin }).on("line", (line) => {
    floorCommand(JSON.parse(line) as FloorCommand).then(
      () => say({ event: "done" }),
      (error: unknown) => say({ event: "error", message: String(error) }),
    );
  });
}
say({ event: "ready", pid: process.pid });

async function shutdown(): Promise<void> {
  await stop().catch(() => {});
  await isolatedStep?.close().catch(() => {});
  await pool.end().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
