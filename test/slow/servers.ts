/**
 * Stopping and restarting the harness's PostgreSQL and Redis, for the slow suite (test/slow).
 * These servers are shared by every test file of a run, so only files that run alone may use
 * this: `npm run test:slow` (vitest.slow.config.ts) runs test/slow one file at a time, and every slow file skips
 * itself unless PACKRUN_TEST_SLOW=1.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { readTestEnv } from "@packrun/testing";
import pg from "pg";

/** Why a slow file is skipped in a normal `npm test`, or false when it may run. */
export const slowSkip =
  process.env.PACKRUN_TEST_SLOW === "1"
    ? false
    : "slow suite: restarts the shared servers; run with `npm run test:slow`";

function run(command: string, args: readonly string[], detached = false): Promise<string> {
  const env = readTestEnv();
  const [file, argv] =
    env.pgOsUser === ""
      ? [command, args]
      : ["runuser", ["-u", env.pgOsUser, "--", command, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      stdio: ["ignore", detached ? "ignore" : "pipe", detached ? "ignore" : "pipe"],
      detached,
    });
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${command} ${args.join(" ")}: exit ${code}: ${output}`)),
    );
  });
}

/** Stops PostgreSQL (`fast`: clean; `immediate`: like a crash), waits `downMs`, starts it again. */
export async function restartPostgres(mode: "fast" | "immediate", downMs: number): Promise<void> {
  const start = await stopPostgres(mode);
  await sleep(downMs);
  await start();
}

/**
 * Stops PostgreSQL; returns the function that starts it again and waits until it answers.
 * @param mode `fast`: a clean shutdown; `immediate`: like a crash
 */
export async function stopPostgres(
  mode: "fast" | "immediate" = "fast",
): Promise<() => Promise<void>> {
  const env = readTestEnv();
  const pgCtl = join(env.pgBin, "pg_ctl");
  await run(pgCtl, ["stop", "-D", env.pgData, "-m", mode, "-w", "-t", "60", "-s"]);
  return async () => {
    // Detached, output to the harness's log, as the harness started it.
    await run(pgCtl, ["start", "-D", env.pgData, "-l", env.pgLog, "-w", "-t", "60", "-s"], true);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const client = new pg.Client({ connectionString: env.databaseUrl });
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => {});
        if (Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
  };
}

/** Runs one statement on the harness's maintenance database. */
export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: readTestEnv().databaseUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The pid of the harness's redis-server (whichever currently runs from its config). */
export async function redisPid(): Promise<number> {
  const pid = Number.parseInt(await readFile(readTestEnv().redisPidFile, "utf8"), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error("no redis pid file");
  return pid;
}

/** Kills Redis (its data is gone: the test server has no persistence) and starts it again. */
export async function restartRedis(downMs: number): Promise<void> {
  const env = readTestEnv();
  const pid = await redisPid();
  process.kill(pid, "SIGKILL");
  while (isAlive(pid)) await sleep(20);
  await sleep(downMs);
  const child = spawn(env.redisServer, [env.redisConf], { detached: true, stdio: "ignore" });
  child.unref();
  const deadline = Date.now() + 30_000;
  while ((await redisPid().catch(() => 0)) === pid || !(await pingRedis())) {
    if (Date.now() > deadline) throw new Error("redis did not come back");
    await sleep(100);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function pingRedis(): Promise<boolean> {
  const { Redis } = await import("ioredis");
  const client = new Redis(readTestEnv().redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
