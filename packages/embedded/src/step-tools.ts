import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What every step's isolation needs, by program, with the Debian package that has it. */
const STEP_TOOLS = [
  { program: "bwrap", debianPackage: "bubblewrap" },
  { program: "slirp4netns", debianPackage: "slirp4netns" },
  { program: "nft", debianPackage: "nftables" },
  { program: "setpriv", debianPackage: "util-linux" },
  { program: "nsenter", debianPackage: "util-linux" },
  { program: "time", debianPackage: "time" },
] as const;

const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Where to look, and whether this process may install packages (tests narrow both). */
export interface StepToolsOptions {
  searchDirs?: readonly string[];
  mayInstall?: boolean;
}

async function installed(program: string, dirs: readonly string[]): Promise<boolean> {
  for (const dir of dirs) {
    try {
      await access(`${dir}/${program}`, constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Debian packages whose program is missing here. */
async function missingPackages(dirs: readonly string[]): Promise<string[]> {
  const missing = new Set<string>();
  for (const tool of STEP_TOOLS)
    if (!(await installed(tool.program, dirs))) missing.add(tool.debianPackage);
  return [...missing];
}

/**
 * The embedded default on a fresh machine: installs the Debian packages step isolation needs
 * (bubblewrap, slirp4netns, nftables, util-linux, time) when they are missing and this process
 * may (root, with apt-get), as the test harness does for redis-server. When bubblewrap is still
 * missing, the embedded default runs steps unisolated (PACKRUN_EXECUTOR_UNISOLATED_STEPS=1)
 * rather than fail every step, and says so loudly: production executors never do this.
 * @returns the warning to show, or null when steps are isolated
 */
export async function ensureStepTools(
  print: (line: string) => void,
  options: StepToolsOptions = {},
): Promise<string | null> {
  const dirs = options.searchDirs ?? SYSTEM_DIRS;
  const mayInstall =
    options.mayInstall ?? (process.getuid?.() === 0 && (await installed("apt-get", SYSTEM_DIRS)));
  let missing = await missingPackages(dirs);
  if (missing.length > 0 && mayInstall) {
    print(`packrun: installing the Debian packages step isolation needs: ${missing.join(", ")}`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const install = ["install", "-y", "--no-install-recommends", ...missing];
    try {
      await run("apt-get", install, { env });
    } catch {
      await run("apt-get", ["update"], { env }).catch(() => undefined);
      await run("apt-get", install, { env }).catch(() => undefined);
    }
    missing = await missingPackages(dirs);
  }
  if (!missing.includes("bubblewrap")) {
    return missing.length === 0
      ? null
      : `step isolation: missing ${missing.join(", ")} (open steps may get no network; see docs/runtimes.md)`;
  }
  process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS ??= "1";
  return (
    "WARNING: bubblewrap is not installed, so steps run UNISOLATED, as this user, on this host " +
    `(install the Debian packages ${missing.join(", ")}; a production executor refuses instead)`
  );
}
