/**
 * The coordinates of the throwaway servers that `npm test` (test/harness/global-setup.ts) starts, read from the
 * environment it passes to every test process.
 */

/** Where the harness's PostgreSQL and Redis run, and how a fault test can stop and restart them. */
export interface TestEnv {
  /** Superuser URL of the `postgres` maintenance database. */
  readonly databaseUrl: string;
  /** Redis URL (database 0). */
  readonly redisUrl: string;
  /** PostgreSQL bin directory (pg_ctl, psql, ...). */
  readonly pgBin: string;
  /** PostgreSQL data directory; its postgresql.conf holds port and test settings. */
  readonly pgData: string;
  /** PostgreSQL server log file (pass to `pg_ctl -l` on restart). */
  readonly pgLog: string;
  /**
   * OS user PostgreSQL tools must run as (`runuser -u <user> --`), or "" to run them directly.
   * Non-empty when the tests run as root.
   */
  readonly pgOsUser: string;
  /** `redis-server` binary. */
  readonly redisServer: string;
  /** Redis config file: `redis-server <conf>` restarts the same server (no persistence). */
  readonly redisConf: string;
  /** Redis pid file, written by whichever redis-server currently runs from `redisConf`. */
  readonly redisPidFile: string;
  /** A scratch directory for the run, removed at teardown. */
  readonly tmpDir: string;
}

const VARS = {
  databaseUrl: "PACKRUN_TEST_DATABASE_URL",
  redisUrl: "PACKRUN_TEST_REDIS_URL",
  pgBin: "PACKRUN_TEST_PG_BIN",
  pgData: "PACKRUN_TEST_PG_DATA",
  pgLog: "PACKRUN_TEST_PG_LOG",
  pgOsUser: "PACKRUN_TEST_PG_OS_USER",
  redisServer: "PACKRUN_TEST_REDIS_SERVER",
  redisConf: "PACKRUN_TEST_REDIS_CONF",
  redisPidFile: "PACKRUN_TEST_REDIS_PIDFILE",
  tmpDir: "PACKRUN_TEST_TMPDIR",
} as const satisfies Record<keyof TestEnv, string>;

/**
 * Reads the harness environment.
 * @param env the environment to read (default `process.env`)
 * @throws Error naming the first missing variable when the tests were not started by `npm test`
 */
export function readTestEnv(env: NodeJS.ProcessEnv = process.env): TestEnv {
  const read = (name: string, allowEmpty = false): string => {
    const value = env[name];
    if (value === undefined || (value === "" && !allowEmpty)) {
      throw new Error(`run tests with \`npm test\`; ${name} is not set`);
    }
    return value;
  };
  return {
    databaseUrl: read(VARS.databaseUrl),
    redisUrl: read(VARS.redisUrl),
    pgBin: read(VARS.pgBin),
    pgData: read(VARS.pgData),
    pgLog: read(VARS.pgLog),
    pgOsUser: read(VARS.pgOsUser, true),
    redisServer: read(VARS.redisServer),
    redisConf: read(VARS.redisConf),
    redisPidFile: read(VARS.redisPidFile),
    tmpDir: read(VARS.tmpDir),
  };
}
