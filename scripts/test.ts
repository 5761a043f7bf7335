/**
 * The project's test command (`npm test`).
 *
 * Starts a throwaway PostgreSQL 15 and Redis on loopback, exports their coordinates to the test
 * processes (see `@packrun/testing`), runs every `*.test.ts` file with `node --test`, and always
 * tears the servers down again.
 *
 *   npm test                                 all test files
 *   npm test -- packages/testing             files under a directory (or one file)
 *   npm test -- --test-name-pattern=redis    arguments starting with `-` go to `node --test`
 *
 * Tunables (environment): PACKRUN_PG_BIN (PostgreSQL bin dir, default
 * /usr/lib/postgresql/15/bin), PACKRUN_TEST_CONCURRENCY (files run at once),
 * PACKRUN_TEST_KEEP=1 (keep the temp dir with server logs after the run).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { availableParallelism, constants as osConstants, tmpdir } from "node:os";
import path from "node:path";
import {
  type Cleanup,
  HarnessError,
  HOST,
  type ServerContext,
  startPostgres,
  startRedis,
} from "./servers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const TEST_ROOTS = ["packages/*/src", "services/*/src", "test", "docs"];

const cleanups: Cleanup[] = [];
let testChild: ChildProcess | undefined;
let interrupted: NodeJS.Signals | undefined;

function log(message: string): void {
  process.stderr.write(`harness: ${message}\n`);
}

/** Throws if a signal arrived, so startup stops between steps. */
function checkInterrupted(): void {
  if (interrupted) throw new HarnessError(`interrupted by ${interrupted}`);
}

// ---------------------------------------------------------------------------------------------
// test files

async function expandRoot(pattern: string): Promise<string[]> {
  const [first, star, ...rest] = pattern.split("/");
  if (star !== "*" || first === undefined) return [pattern];
  let entries: string[] = [];
  try {
    const dirents = await readdir(path.join(ROOT, first), { withFileTypes: true });
    entries = dirents
      .filter((d) => d.isDirectory() && d.name !== "node_modules")
      .map((d) => d.name);
  } catch {
    return [];
  }
  return entries.map((name) => [first, name, ...rest].join("/"));
}

async function walk(dir: string, found: string[]): Promise<void> {
  let dirents: import("node:fs").Dirent[];
  try {
    dirents = await readdir(path.join(ROOT, dir), { withFileTypes: true });
  } catch {
    return;
  }
  for (const dirent of dirents) {
    if (dirent.name === "node_modules" || dirent.name.startsWith(".")) continue;
    const rel = `${dir}/${dirent.name}`;
    if (dirent.isDirectory()) await walk(rel, found);
    else if (dirent.isFile() && dirent.name.endsWith(".test.ts")) found.push(rel);
  }
}

/** Every `*.test.ts` under the test roots, repo-relative, sorted; narrowed by path filters. */
async function discoverTestFiles(filters: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const pattern of TEST_ROOTS) {
    for (const dir of await expandRoot(pattern)) await walk(dir, found);
  }
  const files = [...new Set(found)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (filters.length === 0) return files;

  const base = process.env.INIT_CWD ?? process.cwd();
  const selected = new Set<string>();
  for (const filter of filters) {
    const rel = path.relative(ROOT, path.resolve(base, filter)).split(path.sep).join("/");
    if (rel.startsWith(".."))
      throw new HarnessError(`test filter ${filter} is outside the repository`);
    const matches = files.filter((f) => rel === "" || f === rel || f.startsWith(`${rel}/`));
    if (matches.length === 0) throw new HarnessError(`no test files match ${filter}`);
    for (const match of matches) selected.add(match);
  }
  return files.filter((f) => selected.has(f));
}

// ---------------------------------------------------------------------------------------------
// the run

function runTests(
  files: readonly string[],
  nodeArgs: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const concurrency =
    Number.parseInt(process.env.PACKRUN_TEST_CONCURRENCY ?? "", 10) ||
    Math.min(4, Math.max(2, availableParallelism()));
  const args = [
    "--test",
    "--test-reporter=./scripts/test-reporter.ts",
    "--test-reporter-destination=stdout",
    `--test-concurrency=${concurrency}`,
    "--test-timeout=120000",
    ...nodeArgs,
    ...files,
  ];
  return new Promise((resolve, reject) => {
    // Own process group: signals reach it only through onSignal (exactly once), and whatever the
    // test files leave running can be killed as a group afterwards.
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env,
      stdio: ["ignore", "inherit", "inherit"],
      detached: true,
    });
    testChild = child;
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      testChild = undefined;
      killGroup(child.pid);
      resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 1) : 1));
    });
  });
}

/** SIGKILLs a process group (test files' leftovers), ignoring a group that is already gone. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // no such group: nothing left behind
  }
}

async function teardown(): Promise<void> {
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop();
    if (!cleanup) break;
    try {
      await cleanup.run();
    } catch (error) {
      log(`teardown of ${cleanup.what} failed: ${(error as Error).message}`);
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) {
    log(`${signal} again; still tearing down`);
    return;
  }
  interrupted = signal;
  log(`${signal}: stopping tests and servers`);
  const child = testChild;
  if (child?.pid !== undefined) {
    child.kill(signal); // node --test stops its file processes and reports what was interrupted
    const pid = child.pid;
    setTimeout(() => {
      if (testChild) {
        log("tests did not stop within 15 s; killing them");
        killGroup(pid);
      }
    }, 15_000).unref();
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const filters = argv.filter((a) => !a.startsWith("-"));
  const nodeArgs = argv.filter((a) => a.startsWith("-"));
  const files = await discoverTestFiles(filters);
  if (files.length === 0) {
    log("no *.test.ts files found");
    process.stdout.write("0 passed, 0 failed\n");
    return 0;
  }

  const startedAt = performance.now();
  const tempDir = await mkdtemp(path.join(tmpdir(), "packrun-test-"));
  await chmod(tempDir, 0o755); // traversable by the postgres user
  const keep = process.env.PACKRUN_TEST_KEEP === "1";
  cleanups.push({
    what: "temp dir",
    run: async () => {
      if (keep) log(`kept ${tempDir}`);
      else await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
    },
  });
  const scratch = path.join(tempDir, "scratch");
  await mkdir(scratch);

  // allSettled, not all: never leave one server starting while teardown already ran.
  const servers: ServerContext = {
    tempDir,
    onCleanup: (cleanup) => cleanups.push(cleanup),
    checkInterrupted,
    log,
  };
  const [pgResult, redisResult] = await Promise.allSettled([
    startPostgres(servers),
    startRedis(servers),
  ]);
  if (pgResult.status === "rejected") throw pgResult.reason;
  if (redisResult.status === "rejected") throw redisResult.reason;
  const pg = pgResult.value;
  const redis = redisResult.value;
  checkInterrupted();
  log(
    `servers up in ${Math.round(performance.now() - startedAt)} ms; running ${files.length} test file(s)`,
  );

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PACKRUN_TEST_DATABASE_URL: pg.url,
    PACKRUN_TEST_PG_HOST: HOST,
    PACKRUN_TEST_PG_PORT: String(pg.port),
    PACKRUN_TEST_PG_BIN: pg.bin,
    PACKRUN_TEST_PG_DATA: pg.data,
    PACKRUN_TEST_PG_LOG: pg.log,
    PACKRUN_TEST_PG_SOCKET_DIR: pg.socketDir,
    PACKRUN_TEST_PG_OS_USER: pg.osUser,
    PACKRUN_TEST_REDIS_URL: redis.url,
    PACKRUN_TEST_REDIS_PORT: String(redis.port),
    PACKRUN_TEST_REDIS_SERVER: redis.bin,
    PACKRUN_TEST_REDIS_CONF: redis.conf,
    PACKRUN_TEST_REDIS_PIDFILE: redis.pidFile,
    PACKRUN_TEST_REDIS_LOG: redis.log,
    PACKRUN_TEST_TMPDIR: scratch,
  };
  return runTests(files, nodeArgs, env);
}

process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
process.on("SIGHUP", onSignal);

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  log(error instanceof HarnessError ? error.message : `${(error as Error).stack ?? String(error)}`);
  exitCode = 1;
} finally {
  // Quiet on success: the reporter's `N passed, N failed` must stay the last line of output.
  await teardown();
}
if (interrupted) exitCode = 128 + (osConstants.signals[interrupted] ?? 15);
process.exit(exitCode);
