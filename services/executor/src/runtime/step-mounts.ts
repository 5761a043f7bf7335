import path from "node:path";
import { envList } from "./env-list.ts";

/** A host directory the operator mounts into every process and sandbox step. */
export interface StepMount {
  path: string;
  writable: boolean;
}

/**
 * PACKRUN_EXECUTOR_STEP_MOUNTS: comma-separated `ro:/abs/dir` or `rw:/abs/dir` entries, mounted at
 * the same path in every process and sandbox step (a shared tool or cache directory). Each one
 * widens what every step of every tenant sees: empty by default. The test harness uses one
 * read-write directory through which its steps report to the tests.
 * @throws Error naming the variable and the entry that is not `ro:` or `rw:` plus an absolute path
 */
export function stepMounts(env: NodeJS.ProcessEnv = process.env): StepMount[] {
  return envList(env, "PACKRUN_EXECUTOR_STEP_MOUNTS").map((entry) => {
    const match = /^(ro|rw):(\/.*)$/.exec(entry);
    const dir = match?.[2];
    if (!match || dir === undefined || path.normalize(dir) !== dir || dir === "/")
      throw new Error(
        `PACKRUN_EXECUTOR_STEP_MOUNTS: "${entry}" is not ro:<absolute dir> or rw:<absolute dir>`,
      );
    return { path: dir, writable: match[1] === "rw" };
  });
}
