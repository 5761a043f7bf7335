import path from "node:path";

/** PATH given to steps that do not set their own. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Environment variable marking a step's processes with the worker id (see reapOrphans). */
export const REAP_TAG_VARIABLE = "PACKRUN_REAP_TAG";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Paths inside the attempt workdir that the runtime owns. */
export interface AttemptLayout {
  workdir: string;
  /** `<workdir>/.packrun` */
  privateDir: string;
  /** The `$PACKRUN_OUTPUT` file. */
  outputFile: string;
  /** `$TMPDIR` of the step. */
  tmpDir: string;
  /** Where GNU time writes its measurements. */
  timeReportFile: string;
}

/** The runtime's files in an attempt workdir (`.packrun/output`, `.packrun/tmp`). */
export function attemptLayout(workdir: string): AttemptLayout {
  const privateDir = path.join(workdir, ".packrun");
  return {
    workdir,
    privateDir,
    outputFile: path.join(privateDir, "output"),
    tmpDir: path.join(privateDir, "tmp"),
    timeReportFile: path.join(privateDir, "time-report"),
  };
}

/**
 * Checks the step's `env` names: POSIX-style names only, and the `PACKRUN_` prefix is reserved
 * for variables the runtime sets. Returns a problem description, or null when fine.
 */
export function checkEnvNames(env: Readonly<Record<string, string>>): string | null {
  for (const name of Object.keys(env)) {
    if (!ENV_NAME.test(name)) return `invalid environment variable name "${name}"`;
    if (name.startsWith("PACKRUN_")) return `environment variable name "${name}" is reserved`;
  }
  return null;
}

/**
 * The complete environment of a process/sandbox step: nothing from the worker's own environment
 * (which holds database URLs and the like), only the step's `env` on top of HOME (the workdir),
 * PATH, TMPDIR, PACKRUN_OUTPUT and the reap tag.
 */
export function stepEnvironment(
  env: Readonly<Record<string, string>>,
  layout: AttemptLayout,
  workerId: string,
): Record<string, string> {
  return {
    PATH: DEFAULT_PATH,
    HOME: layout.workdir,
    TMPDIR: layout.tmpDir,
    ...env,
    PACKRUN_OUTPUT: layout.outputFile,
    [REAP_TAG_VARIABLE]: workerId,
  };
}
