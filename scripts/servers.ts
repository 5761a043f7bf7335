/**
 * Throwaway PostgreSQL 15 and Redis servers on loopback, shared by the test command
 * (test/harness/global-setup.ts) and the benchmarks (`bench/main.ts`).
 *
 * Each start function takes a {@link ServerContext}: the temp dir to put the server in, where to
 * register its teardown, how to log, and how to stop between startup steps when interrupted.
 * The caller chooses the servers' durability through `settings` (the test command turns fsync
 * and synchronous commit off; the benchmarks keep PostgreSQL's durable defaults).
 *
 * Tunables (environment): PACKRUN_PG_BIN (PostgreSQL bin dir, default /usr/lib/postgresql/15/bin).
 */
import { spawn } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, appendFile, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const ROOT = path.resolve(import.meta.dirname, "..");
export const HOST = "127.0.0.1";
const DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin";
const READY_TIMEOUT_MS = 60_000;
const IS_ROOT = process.getuid?.() === 0;

/** Something to undo at teardown; run in reverse order of registration. */
export type Cleanup = { readonly what: string; readonly run: () => Promise<void> };

export class HarnessError extends Error {}

/** What a server start needs from its caller. */
export interface ServerContext {
  /** Directory (mode 0755, so the postgres user can traverse it) the server lives in. */
  readonly tempDir: string;
  /** Registers a teardown step; the caller runs them in reverse order. */
  readonly onCleanup: (cleanup: Cleanup) => void;
  /** Throws to stop startup between steps (e.g. after a signal). */
  readonly checkInterrupted?: () => void;
  readonly log?: (message: string) => void;
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
export function run(
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
export async function runChecked(
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

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL. */
export async function terminate(pid: number, graceMs: number): Promise<void> {
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

export async function which(command: string): Promise<string | undefined> {
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
export function freePort(): Promise<number> {
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
// redis

async function ensureRedisServer(log: (message: string) => void): Promise<string> {
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

export type RedisInfo = {
  url: string;
  port: number;
  bin: string;
  conf: string;
  pidFile: string;
  log: string;
  dir: string;
  version: string;
};

/** Redis persistence of the test command: none (fault tests restart it without data). */
export const TEST_REDIS_SETTINGS: readonly string[] = ['save ""', "appendonly no"];

/**
 * Starts redis-server (installing Debian's package when missing and we are root) with
 * `settings` (redis.conf lines, e.g. persistence) on a free loopback port; resolves once it
 * answers PING.
 */
export async function startRedis(
  context: ServerContext,
  settings: readonly string[] = TEST_REDIS_SETTINGS,
): Promise<RedisInfo> {
  const { tempDir } = context;
  const log = context.log ?? (() => {});
  const checkInterrupted = context.checkInterrupted ?? (() => {});
  const bin = await ensureRedisServer(log);
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
      ...settings,
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
  context.onCleanup({
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
  return { url: `redis://${HOST}:${port}`, port, bin, conf, pidFile, log: logFile, dir, version };
}

// ---------------------------------------------------------------------------------------------
// postgres

export type PostgresInfo = {
  url: string;
  port: number;
  bin: string;
  data: string;
  log: string;
  socketDir: string;
  osUser: string;
  version: string;
};

export async function postgresOwner(): Promise<{ uid: number; gid: number }> {
  const uid = await run("id", ["-u", "postgres"]);
  const gid = await run("id", ["-g", "postgres"]);
  if (uid.code !== 0 || gid.code !== 0) {
    throw new HarnessError(
      "running as root but there is no `postgres` OS user to run PostgreSQL as",
    );
  }
  return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
}

/** PostgreSQL settings of the test command: fast, not durable. */
export const TEST_POSTGRES_SETTINGS: readonly string[] = [
  "max_connections = 300",
  "fsync = off",
  "synchronous_commit = off",
  "full_page_writes = off",
  "jit = off",
];

/**
 * Initialises a cluster in `<tempDir>/pg` and starts PostgreSQL with `settings`
 * (postgresql.conf lines) on a free loopback port; resolves once it accepts connections.
 */
export async function startPostgres(
  context: ServerContext,
  settings: readonly string[] = TEST_POSTGRES_SETTINGS,
): Promise<PostgresInfo> {
  const { tempDir } = context;
  const log = context.log ?? (() => {});
  const checkInterrupted = context.checkInterrupted ?? (() => {});
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
      ...settings,
      "timezone = 'UTC'",
      "log_timezone = 'UTC'",
      "lc_messages = 'C'",
      "",
    ].join("\n"),
  );

  context.onCleanup({
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
    version,
  };
}
