/**
 * Vitest `globalSetup` of every test project: starts a throwaway PostgreSQL 15 and Redis on
 * loopback (see scripts/servers.ts) before any test file runs, and tears them down after the last.
 *
 * The servers' coordinates reach the test files, and every process they spawn, as environment
 * variables read by `readTestEnv()` in `@packrun/testing`: Vitest forks its test workers from this
 * process after this hook, so they inherit them. Each test file then makes its own database or
 * Redis key prefix, which is what lets files run in parallel against one server of each.
 *
 * Tunables (environment): PACKRUN_PG_BIN (PostgreSQL bin dir, default /usr/lib/postgresql/15/bin),
 * PACKRUN_TEST_KEEP=1 (keep the temp dir with the server logs after the run).
 */
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type Cleanup,
  HOST,
  type ServerContext,
  startPostgres,
  startRedis,
} from "../../scripts/servers.ts";

function log(message: string): void {
  process.stderr.write(`harness: ${message}\n`);
}

async function runCleanups(cleanups: Cleanup[]): Promise<void> {
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

/** Starts the servers and exports their coordinates; returns the teardown. */
export default async function setup(): Promise<() => Promise<void>> {
  const cleanups: Cleanup[] = [];
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
  // Mounted read-write into every step the tests run (see stepSharedDir in @packrun/testing).
  const stepShared = path.join(tempDir, "step-shared");
  await mkdir(stepShared);
  await chmod(stepShared, 0o1777);

  const context: ServerContext = {
    tempDir,
    onCleanup: (cleanup) => cleanups.push(cleanup),
    log,
  };
  // allSettled, not all: never leave one server starting while teardown already ran.
  const [pgResult, redisResult] = await Promise.allSettled([
    startPostgres(context),
    startRedis(context),
  ]);
  if (pgResult.status === "rejected" || redisResult.status === "rejected") {
    await runCleanups(cleanups);
    throw pgResult.status === "rejected"
      ? pgResult.reason
      : (redisResult as PromiseRejectedResult).reason;
  }
  const pg = pgResult.value;
  const redis = redisResult.value;
  log(`servers up in ${Math.round(performance.now() - startedAt)} ms`);

  Object.assign(process.env, {
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
    PACKRUN_TEST_STEP_SHARED: stepShared,
    PACKRUN_EXECUTOR_STEP_MOUNTS: `rw:${stepShared}`,
  });
  return () => runCleanups(cleanups);
}
