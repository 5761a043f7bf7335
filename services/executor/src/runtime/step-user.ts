import { chown } from "node:fs/promises";
import type { AttemptLayout } from "./step-env.ts";
/**
 * The unprivileged user every process and sandbox step runs as when the worker is root: no
 * capabilities, `no_new_privs`, no supplementary groups. Default `nobody:nogroup` (65534); an
 * operator may pick a dedicated uid with PACKRUN_EXECUTOR_STEP_UID / PACKRUN_EXECUTOR_STEP_GID.
 * A worker that is not root cannot change user: its steps get a user namespace instead, in which
 * they are the same unprivileged uid and hold no capability outside it.
 */
export interface StepUser {
  uid: number;
  gid: number;
}

const NOBODY = 65534;

function readId(name: string): number {
  const text = process.env[name];
  if (text === undefined || text === "") return NOBODY;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 4_294_967_294)
    throw new Error(`${name}: expected a non-zero uid/gid number, got "${text}"`);
  return value;
}

/**
 * The configured step user.
 * @throws Error naming the variable when PACKRUN_EXECUTOR_STEP_UID/GID is not a valid id
 */
export function stepUser(): StepUser {
  return { uid: readId("PACKRUN_EXECUTOR_STEP_UID"), gid: readId("PACKRUN_EXECUTOR_STEP_GID") };
}

/** The worker runs as root, so steps switch to the step user (otherwise: a user namespace). */
export const WORKER_IS_ROOT = process.getuid?.() === 0;

/**
 * The directories the step writes to (workdir, its private dir and TMPDIR, the chosen cwd) are
 * created by the root worker; hand them to the step user. Not recursive: anything else in a
 * reused workdir was written by an earlier attempt, i.e. by the step user already.
 */
export async function handToStepUser(
  layout: AttemptLayout,
  cwd: string,
  user: StepUser,
): Promise<void> {
  for (const dir of new Set([layout.workdir, layout.privateDir, layout.tmpDir, cwd])) {
    await chown(dir, user.uid, user.gid);
  }
}
