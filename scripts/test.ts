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
import { constants as fsConstants } from "node:fs";
import {
  access,
  appendFile,
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { availableParallelism, constants as osConstants, tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const ROOT = path.resolve(import.meta.dirname, "..");
const HOST = "127.0.0.1";
const DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin";
const TEST_ROOTS = ["packages/*/src", "services/*/src", "test", "docs"];
const READY_TIMEOUT_MS = 60_000;
const IS_ROOT = process.getuid?.() === 0;

/** Something to undo at teardown; run in reverse order of registration. */
type Cleanup = { readonly what: string; readonly run: () => Promise<void> };

const cleanups: Cleanup[] = [];
let testChild: ChildProcess | undefined;
let interrupted: NodeJS.Signals | undefined;

function log(message: string): void {
  process.stderr.write(`harness: ${message}\n`);
}

class HarnessError extends Error {}

/** Throws if a signal arrived, so startup stops between steps. */
function checkInterrupted(): void {
  if (interrupted) throw new HarnessError(`interrupted by ${interrupted}`);
}

// ---------------------------------------------------------------------------------------------
// processes

type RunResult = {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
};

/** Runs a command to completion, capturing its output. Never throws for a non-zero exit. */
function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; detached?: boolean; echo?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      detached: options.detached ?? false,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      if (options.echo) process.stderr.write(chunk);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (options.echo) process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Like {@link run} but throws with the command's output when it fails. */
async function runChecked(
  command: string,
  args: readonly string[],
  options: Parameters<typeof run>[2] = {},
): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const output = `${result.stdout}${result.stderr}`.trim();
    throw new HarnessError(
      `\`${[command, ...args].join(" ")}\` failed (exit ${result.code ?? result.signal})${output ? `:\n${output}` : ""}`,
    );
  }
  return result;
}

/** PostgreSQL refuses to run as root: when we are root, run its tools as the `postgres` user. */
function asPostgres(command: string, args: readonly string[]): [string, string[]] {
  return IS_ROOT ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, [...args]];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL. */
async function terminate(pid: number, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(50);
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

async function which(command: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  for (const dir of [
    ...dirs,
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
  ]) {
    const candidate = path.join(dir, command);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** A free TCP port on loopback (bind to port 0, read it back, release it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new HarnessError("could not determine a free port"));
      });
    });
  });
}

async function tail(file: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return `(no log at ${file})`;
  }
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
// redis

async function ensureRedisServer(): Promise<string> {
  const found = await which("redis-server");
  if (found) return found;
  if (!IS_ROOT || !(await which("apt-get"))) {
    throw new HarnessError(
      "redis-server is not installed: install the Debian package `redis-server` " +
        "(apt-get install redis-server) or put redis-server on PATH",
    );
  }
  log("redis-server missing; installing the Debian package redis-server");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = ["install", "-y", "--no-install-recommends", "redis-server"];
  let result = await run("apt-get", install, { env, echo: true });
  if (result.code !== 0) {
    log("apt-get install failed; running apt-get update and retrying");
    await runChecked("apt-get", ["update"], { env, echo: true });
    result = await run("apt-get", install, { env, echo: true });
  }
  const installed = await which("redis-server");
  if (result.code !== 0 || !installed) {
    throw new HarnessError(
      "could not install redis-server with apt-get; install the Debian package `redis-server`",
    );
  }
  return installed;
}

/** Sends PING over a raw socket; resolves true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
    socket.connect(port, HOST, () => socket.write("PING\r\n"));
  });
}

type RedisInfo = {
  url: string;
  port: number;
  bin: string;
  conf: string;
  pidFile: string;
  log: string;
  dir: string;
};

async function startRedis(tempDir: string): Promise<RedisInfo> {
  const bin = await ensureRedisServer();
  const version = (await run(bin, ["--version"])).stdout.match(/v=(\S+)/)?.[1] ?? "?";
  const dir = path.join(tempDir, "redis");
  await mkdir(dir);
  const port = await freePort();
  const conf = path.join(dir, "redis.conf");
  const pidFile = path.join(dir, "redis.pid");
  const logFile = path.join(dir, "redis.log");
  // A config file (rather than flags) so fault tests can restart the same server:
  // `redis-server "$PACKRUN_TEST_REDIS_CONF"`.
  await writeFile(
    conf,
    [
      `bind ${HOST}`,
      `port ${port}`,
      'save ""',
      "appendonly no",
      `dir ${dir}`,
      `pidfile ${pidFile}`,
      `logfile ${logFile}`,
      "daemonize no",
      "",
    ].join("\n"),
  );
  const child = spawn(bin, [conf], { cwd: dir, detached: true, stdio: "ignore" });
  let exited: string | undefined;
  child.on("exit", (code, signal) => {
    exited = `exit ${code ?? signal}`;
  });
  child.on("error", (error) => {
    exited = error.message;
  });
  cleanups.push({
    what: "redis",
    run: async () => {
      const pids = new Set<number>();
      if (child.pid !== undefined) pids.add(child.pid);
      // A fault test may have restarted redis from the config: stop that one too.
      const fromFile = Number.parseInt(await readFile(pidFile, "utf8").catch(() => ""), 10);
      if (Number.isInteger(fromFile) && fromFile > 0) pids.add(fromFile);
      await Promise.all([...pids].map((pid) => terminate(pid, 5000)));
    },
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    checkInterrupted();
    if (exited !== undefined) {
      throw new HarnessError(
        `redis-server exited during startup (${exited}); log:\n${await tail(logFile)}`,
      );
    }
    if (await ping(port)) break;
    if (Date.now() > deadline) {
      throw new HarnessError(
        `redis-server did not answer PING within ${READY_TIMEOUT_MS} ms; log:\n${await tail(logFile)}`,
      );
    }
    await sleep(50);
  }
  log(`redis ${version} on ${HOST}:${port}`);
  return { url: `redis://${HOST}:${port}`, port, bin, conf, pidFile, log: logFile, dir };
}

// ---------------------------------------------------------------------------------------------
// postgres

type PostgresInfo = {
  url: string;
  port: number;
  bin: string;
  data: string;
  log: string;
  socketDir: string;
  osUser: string;
};

async function postgresOwner(): Promise<{ uid: number; gid: number }> {
  const uid = await run("id", ["-u", "postgres"]);
  const gid = await run("id", ["-g", "postgres"]);
  if (uid.code !== 0 || gid.code !== 0) {
    throw new HarnessError(
      "running as root but there is no `postgres` OS user to run PostgreSQL as",
    );
  }
  return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
}

async function startPostgres(tempDir: string): Promise<PostgresInfo> {
  const bin = process.env.PACKRUN_PG_BIN ?? DEFAULT_PG_BIN;
  const tool = (name: string) => path.join(bin, name);
  try {
    await access(tool("initdb"), fsConstants.X_OK);
  } catch {
    throw new HarnessError(
      `PostgreSQL 15 server binaries not found in ${bin}: install the Debian package ` +
        "`postgresql-15` or set PACKRUN_PG_BIN to its bin directory",
    );
  }
  const versionOutput = (await runChecked(tool("postgres"), ["--version"])).stdout;
  const version = versionOutput.match(/PostgreSQL\) (\S+)/)?.[1] ?? versionOutput.trim();

  const pgDir = path.join(tempDir, "pg");
  const data = path.join(pgDir, "data");
  const socketDir = path.join(pgDir, "socket");
  const logFile = path.join(pgDir, "postgres.log");
  await mkdir(socketDir, { recursive: true });
  if (IS_ROOT) {
    const owner = await postgresOwner();
    await chown(pgDir, owner.uid, owner.gid);
    await chown(socketDir, owner.uid, owner.gid);
  }
  const pgOptions = { cwd: pgDir };

  const [initdb, initdbArgs] = asPostgres(tool("initdb"), [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
  ]);
  await runChecked(initdb, initdbArgs, pgOptions);
  checkInterrupted();

  const port = await freePort();
  // In postgresql.conf (not pg_ctl -o) so a restart by a fault test keeps them.
  await appendFile(
    path.join(data, "postgresql.conf"),
    [
      "",
      "# packrun test harness",
      `listen_addresses = '${HOST}'`,
      `port = ${port}`,
      `unix_socket_directories = '${socketDir}'`,
      "max_connections = 300",
      "fsync = off",
      "synchronous_commit = off",
      "full_page_writes = off",
      "jit = off",
      "timezone = 'UTC'",
      "log_timezone = 'UTC'",
      "lc_messages = 'C'",
      "",
    ].join("\n"),
  );

  cleanups.push({
    what: "postgres",
    run: async () => {
      const [pgCtl, stopArgs] = asPostgres(tool("pg_ctl"), [
        "stop",
        "-D",
        data,
        "-m",
        "fast",
        "-w",
        "-t",
        "20",
        "-s",
      ]);
      const stopped = await run(pgCtl, stopArgs, pgOptions);
      if (stopped.code === 0) return;
      // Not running (fine) or did not stop in time: make sure no postmaster is left behind.
      const pid = Number.parseInt(
        (await readFile(path.join(data, "postmaster.pid"), "utf8").catch(() => "")).split(
          "\n",
        )[0] ?? "",
        10,
      );
      if (Number.isInteger(pid) && pid > 0) await terminate(pid, 5000);
    },
  });

  // Own session (detached) so a terminal ^C reaches the tests, not the server: we stop it in order.
  const [pgCtl, startArgs] = asPostgres(tool("pg_ctl"), [
    "start",
    "-D",
    data,
    "-l",
    logFile,
    "-W",
    "-s",
  ]);
  await runChecked(pgCtl, startArgs, { ...pgOptions, detached: true });

  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    checkInterrupted();
    const ready = await run(tool("pg_isready"), [
      "-q",
      "-h",
      HOST,
      "-p",
      String(port),
      "-U",
      "postgres",
      "-d",
      "postgres",
      "-t",
      "2",
    ]);
    if (ready.code === 0) break;
    const elapsed = Date.now() - started;
    if (elapsed > 1000 && attempt % 10 === 0) {
      const [ctl, statusArgs] = asPostgres(tool("pg_ctl"), ["status", "-D", data]);
      const status = await run(ctl, statusArgs, pgOptions);
      if (status.code === 3 || status.code === 4) {
        throw new HarnessError(`postgres exited during startup; log tail:\n${await tail(logFile)}`);
      }
    }
    if (elapsed > READY_TIMEOUT_MS) {
      throw new HarnessError(
        `postgres not ready after ${READY_TIMEOUT_MS} ms; log tail:\n${await tail(logFile)}`,
      );
    }
    await sleep(100);
  }
  log(`postgres ${version} on ${HOST}:${port}`);
  return {
    url: `postgres://postgres@${HOST}:${port}/postgres`,
    port,
    bin,
    data,
    log: logFile,
    socketDir,
    osUser: IS_ROOT ? "postgres" : "",
  };
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
  const [pgResult, redisResult] = await Promise.allSettled([
    startPostgres(tempDir),
    startRedis(tempDir),
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
