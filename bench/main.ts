/**
 * packrun against its peers and the physical limits, in one run: `npm run bench`.
 *
 *   npm run bench                     every workload at full size (see docs/benchmarks.md)
 *   npm run bench -- --quick          a smoke run: tiny counts, one repetition, a few minutes
 *   npm run bench -- --only=2,3       some workloads (ids 1-8)
 *   npm run bench -- --systems=packrun,bullmq   some systems (packrun, bullmq, graphile, floor)
 *
 * BENCH_KEEP=1 keeps the temp dir (server and service logs); BENCH_CPU_PROF=<dir> makes every
 * system process write a CPU profile there at exit.
 *
 * Starts its own PostgreSQL 15 (durable defaults: fsync and synchronous_commit on) and Redis
 * (append-only file, fsync every second) through scripts/servers.ts, measures the physical
 * limits, then runs each workload on each system in turn: packrun (its production entry
 * points: planner, evidence, executor API and worker processes), BullMQ, graphile-worker and the
 * floor runner. Writes one JSON file per workload and summary.md to bench/results/<run>/ (a full
 * run also to bench/results/latest/), and prints the summary.
 *
 * Exits 1 when the harness fails (a system does not start, runs fail, a correctness check such
 * as "zero duplicate successes" fails); never because of a timing.
 */
import { randomBytes } from "node:crypto";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import {
  type Cleanup,
  HarnessError,
  type ServerContext,
  startPostgres,
  startRedis,
} from "../scripts/servers.ts";
import { measureCommits, measureRedis, measureSpawn, WalCounter } from "./lib/limits.ts";
import { pidFromFile, postmasterPid, rssMiB } from "./lib/meter.ts";
import { describeMachine, summary } from "./lib/report.ts";
import { type BenchEnv, FloorSystem, PackrunSystem, PeerSystem } from "./lib/systems.ts";
import { formatWithBiome, log, round } from "./lib/util.ts";
import {
  type BenchContext,
  benchSizes,
  type Limits,
  WORKLOADS,
  type WorkloadResult,
} from "./lib/workloads.ts";

const RESULTS = path.resolve(import.meta.dirname, "results");
/** `npm run bench:start -- --save` writes its figures here in `latest/` (bench/embedded-start.ts). */
const START_FIGURES = "npm-start.md";

/** The same durability for every system. */
const POSTGRES_SETTINGS = [
  "max_connections = 300",
  "fsync = on",
  "synchronous_commit = on",
  "full_page_writes = on",
  "jit = off",
];
const REDIS_SETTINGS = ['save ""', "appendonly yes", "appendfsync everysec"];
/** BENCH_PG_STATEMENTS=1: a diagnostic run with pg_stat_statements (statements.json). */
const statements = process.env.BENCH_PG_STATEMENTS === "1";
if (statements) POSTGRES_SETTINGS.push("shared_preload_libraries = 'pg_stat_statements'");

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args
  .find((arg) => arg.startsWith("--only="))
  ?.slice("--only=".length)
  .split(",")
  .filter(Boolean);
const onlySystems = args
  .find((arg) => arg.startsWith("--systems="))
  ?.slice("--systems=".length)
  .split(",")
  .filter(Boolean);
const keep = process.env.BENCH_KEEP === "1";
const unknown = args.filter(
  (arg) => arg !== "--quick" && !arg.startsWith("--only=") && !arg.startsWith("--systems="),
);
if (unknown.length > 0) {
  process.stderr.write(
    `usage: npm run bench -- [--quick] [--only=1,2,...] [--systems=packrun,bullmq,graphile,floor]; unknown: ${unknown.join(" ")}\n`,
  );
  process.exit(2);
}

const cleanups: Cleanup[] = [];
let interrupted: NodeJS.Signals | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    interrupted = signal;
    log(`${signal}: stopping`);
    void teardown().then(() => process.exit(130));
  });
}

async function teardown(): Promise<void> {
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop();
    if (!cleanup) break;
    await cleanup
      .run()
      .catch((error: unknown) => log(`teardown of ${cleanup.what} failed: ${String(error)}`));
  }
}

/** Rounds every number in a result for the JSON files. */
function rounded(value: unknown): unknown {
  if (typeof value === "number") return round(value);
  if (Array.isArray(value)) return value.map(rounded);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rounded(v)]));
  return value;
}

/** The statements each database ran most often, with their total time (diagnostic runs). */
async function topStatements(adminUrl: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    return (
      await client.query(
        `SELECT d.datname, s.calls, round(s.total_exec_time::numeric, 1) AS total_ms, s.rows, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 300) AS query
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          ORDER BY s.calls DESC LIMIT 80`,
      )
    ).rows;
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const started = performance.now();
  const tempDir = await mkdtemp(path.join(tmpdir(), "packrun-bench-"));
  await chmod(tempDir, 0o755);
  cleanups.push({
    what: "temp dir",
    run: async () => {
      if (keep) log(`kept ${tempDir}`);
      else await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
    },
  });
  const servers: ServerContext = {
    tempDir,
    onCleanup: (cleanup) => cleanups.push(cleanup),
    checkInterrupted: () => {
      if (interrupted) throw new HarnessError(`interrupted by ${interrupted}`);
    },
    log,
  };
  const [pg, redis] = await Promise.all([
    startPostgres(servers, POSTGRES_SETTINGS),
    startRedis(servers, REDIS_SETTINGS),
  ]);
  const env: BenchEnv = {
    pgBase: `postgres://postgres@127.0.0.1:${pg.port}/`,
    redisUrl: redis.url,
    tempDir,
    shared: { postgres: [postmasterPid(pg.data)], redis: [pidFromFile(redis.pidFile)] },
  };
  const machine = describeMachine(pg.version, redis.version);
  log(`machine: ${JSON.stringify(machine)}`);
  const size = benchSizes(quick);
  const context: BenchContext = {
    quick,
    scratch: path.join(tempDir, "scratch"),
    systems: {
      packrun: new PackrunSystem(env),
      bullmq: new PeerSystem("bullmq", env),
      graphile: new PeerSystem("graphile", env),
      floor: new FloorSystem(env),
    },
    limits: undefined as unknown as Limits,
    wal: new WalCounter(`${env.pgBase}postgres`),
    ...(onlySystems ? { only: onlySystems } : {}),
  };
  await mkdir(context.scratch, { recursive: true });
  // packrun's steps are isolated: those of the retry-storm workload record their attempts in the
  // scratch directory, which every packrun step gets mounted (the peers run their steps on the
  // host). The step user is unprivileged, hence the sticky world-writable mode.
  await chmod(context.scratch, 0o1777);
  process.env.PACKRUN_EXECUTOR_STEP_MOUNTS = `rw:${context.scratch}`;

  // Physical limits. The spawn measurement runs in a process as large as an idle packrun worker.
  log("physical limits");
  const packrun = context.systems.packrun;
  await packrun.start({ workers: 1, concurrency: 8 });
  let workerRssMiB = 0;
  try {
    await packrun.reset();
    await packrun.closedLoop(quick ? 5 : 30, 8, {
      steps: [["/bin/true"], ["/bin/true"], ["/bin/true"]],
      maxAttempts: 3,
    });
    workerRssMiB = (packrun.components().worker ?? []).reduce((sum, pid) => sum + rssMiB(pid), 0);
  } finally {
    await packrun.stop();
  }
  const spawnCount = quick ? 200 : 2000;
  const commitSeconds = quick ? 1 : 3;
  const floorDb = `${env.pgBase}postgres`;
  context.limits = {
    workerRssMiB,
    spawn: await measureSpawn(workerRssMiB, [1, 4, 8], spawnCount),
    spawnPlainNode: await measureSpawn(0, [1, 8], spawnCount),
    commits: [
      await measureCommits(floorDb, 1, commitSeconds),
      await measureCommits(floorDb, 8, commitSeconds),
    ],
    redisPingMs: await measureRedis(redis.url, quick ? 500 : 5000),
  };
  log(`limits: ${JSON.stringify(rounded(context.limits))}`);

  const runId = `${new Date().toISOString().replace(/[:.]/g, "-")}${quick ? "-quick" : ""}-${randomBytes(2).toString("hex")}`;
  const outDir = path.join(RESULTS, runId);
  await mkdir(outDir, { recursive: true });
  const write = (name: string, value: unknown) =>
    writeFile(path.join(outDir, name), `${JSON.stringify(rounded(value), null, 2)}\n`);
  await write("machine.json", {
    machine,
    limits: context.limits,
    quick,
    postgres: POSTGRES_SETTINGS,
    redis: REDIS_SETTINGS,
  });

  const results: WorkloadResult[] = [];
  let failed = false;
  for (const [id, workload] of WORKLOADS) {
    if (only && !only.includes(id)) continue;
    if (interrupted) break;
    const t0 = performance.now();
    log(`workload ${id}`);
    try {
      const result = await workload(context, size);
      result.durationSeconds = (performance.now() - t0) / 1000;
      results.push(result);
      await write(`${result.id}.json`, result);
      for (const [name, system] of Object.entries(result.systems)) {
        if (system.error) {
          failed = true;
          log(`workload ${id}: ${name} failed`);
        }
      }
      for (const check of result.checks) {
        if (!check.ok) {
          failed = true;
          log(`workload ${id}: check failed: ${check.name}: ${check.detail}`);
        }
      }
    } catch (error) {
      failed = true;
      log(
        `workload ${id} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
    log(`workload ${id} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const durable = [
    `PostgreSQL ${POSTGRES_SETTINGS.filter((s) => /fsync|commit|full_page/.test(s)).join(", ")}`,
    `Redis ${REDIS_SETTINGS.join(", ")} (packrun and BullMQ alike)`,
  ];
  await context.wal.close();
  if (statements) await write("statements.json", await topStatements(`${env.pgBase}postgres`));
  const markdown = summary(machine, context.limits, results, { quick, durable });
  await writeFile(path.join(outDir, "summary.md"), markdown);
  if (!quick && !only && !onlySystems) {
    const latest = path.join(RESULTS, "latest");
    // `npm run bench:start -- --save` keeps its own latest figures there: not this run's to drop.
    const startFigures = await readFile(path.join(latest, START_FIGURES), "utf8").catch(() => null);
    await rm(latest, { recursive: true, force: true });
    await cp(outDir, latest, { recursive: true });
    if (startFigures !== null) await writeFile(path.join(latest, START_FIGURES), startFigures);
    formatWithBiome(latest);
  }
  process.stdout.write(markdown);
  log(
    `results in ${path.relative(process.cwd(), outDir)} (${((performance.now() - started) / 1000).toFixed(0)} s)`,
  );
  return failed ? 1 : 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  log(error instanceof HarnessError ? error.message : `${(error as Error).stack ?? String(error)}`);
  exitCode = 1;
} finally {
  await teardown();
}
process.exit(exitCode);
