import { chmod, mkdtemp } from "node:fs/promises";
import path from "node:path";

/**
 * A fresh directory that steps can read and write: under the directory the test harness mounts
 * into every step (PACKRUN_EXECUTOR_STEP_MOUNTS, see test/harness/global-setup.ts), and writable
 * by the unprivileged step user. Tests use it as a side channel, e.g. to count how often a step
 * really ran. Steps see nothing else of the host.
 * @param prefix a readable part of the name
 * @param parent another step-shared directory to nest in (default: the harness's shared root)
 */
export async function stepSharedDir(prefix: string, parent?: string): Promise<string> {
  const base = parent ?? process.env.PACKRUN_TEST_STEP_SHARED;
  if (base === undefined || base === "")
    throw new Error("run tests with `npm test`; PACKRUN_TEST_STEP_SHARED is not set");
  const dir = await mkdtemp(path.join(base, prefix));
  await chmod(dir, 0o777);
  return dir;
}
