/**
 * The slow suite (`node scripts/test-slow.ts`): the test files under test/slow, which stop and
 * restart the harness's own PostgreSQL and Redis. They run through the same harness as
 * `npm test` (throwaway servers, the same reporter and last line `N passed, N failed`), but one
 * file at a time and with PACKRUN_TEST_SLOW=1, which they need to run at all: in a normal
 * `npm test` they are reported as skipped, because restarting a server that other test files
 * are using at the same moment would break those.
 *
 *   node scripts/test-slow.ts                      every slow file
 *   node scripts/test-slow.ts test/slow/x.test.ts  one of them (arguments go to scripts/test.ts)
 */
import { spawn } from "node:child_process";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
const files = args.filter((arg) => !arg.startsWith("-"));
const child = spawn(
  process.execPath,
  [path.join(root, "scripts", "test.ts"), ...(files.length === 0 ? ["test/slow"] : []), ...args],
  {
    cwd: root,
    stdio: "inherit",
    env: {
      ...process.env,
      PACKRUN_TEST_SLOW: "1",
      PACKRUN_TEST_CONCURRENCY: "1",
      INIT_CWD: process.env.INIT_CWD ?? process.cwd(),
    },
  },
);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
  process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + 15)));
