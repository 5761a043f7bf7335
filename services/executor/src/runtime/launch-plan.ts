import { lstat, readlink } from "node:fs/promises";
import type { AttemptLayout } from "./step-env.ts";
import { BWRAP_INFO_FD, type LaunchPlan } from "./supervise.ts";
import { TIME_FORMAT } from "./time-report.ts";

/** Size of the sandbox's private /tmp (a tmpfs, i.e. worker memory). TMPDIR points to disk. */
export const SANDBOX_TMPFS_BYTES = 64 * 1024 * 1024;

/** Installed helper binaries (null = missing) and what probing found working. */
export interface LaunchSupport {
  bwrap: string | null;
  time: string | null;
  prlimit: string | null;
  /** bubblewrap can create a PID namespace here. */
  pidNamespace: boolean;
}

/** What to run and where, before any wrapping. */
export interface LaunchInput {
  argv: readonly string[];
  env: Record<string, string>;
  cwd: string;
  layout: AttemptLayout;
  stagingRoot: string;
  sealed: boolean;
  memoryBytes?: number | undefined;
  pids?: number | undefined;
}

/**
 * Builds the command line of a process or sandbox step. The step's argv is always passed as
 * separate arguments (never through a shell), each wrapper ending its options with `--` so that
 * an argv starting with `-` stays the step's program:
 *
 *   [bwrap … --]  [time -f … -o <workdir>/.packrun/time-report --]  [prlimit --as=… --nproc=… --]  argv…
 */
export async function buildLaunchPlan(
  kind: "process" | "sandbox",
  input: LaunchInput,
  support: LaunchSupport,
): Promise<LaunchPlan> {
  const inner: string[] = [];
  if (support.time) {
    inner.push(support.time, "-f", TIME_FORMAT, "-o", input.layout.timeReportFile, "--");
  }
  if (support.prlimit && (input.memoryBytes !== undefined || input.pids !== undefined)) {
    inner.push(support.prlimit);
    if (input.memoryBytes !== undefined) inner.push(`--as=${input.memoryBytes}`);
    if (input.pids !== undefined) inner.push(`--nproc=${input.pids}`);
    inner.push("--");
  }
  inner.push(...input.argv);

  const base = {
    env: input.env,
    cwd: input.cwd,
    timeReport: support.time
      ? { workdir: input.layout.workdir, file: input.layout.timeReportFile }
      : null,
  };
  if (kind === "process" && !(support.bwrap && support.pidNamespace)) {
    const [command, ...args] = inner as [string, ...string[]];
    return { ...base, command, args, pidNamespace: false };
  }
  if (!support.bwrap) throw new Error("bubblewrap is not installed");
  const isolation = kind === "process" ? processNamespaceArgs() : await sandboxArgs(input);
  return {
    ...base,
    command: support.bwrap,
    args: [
      ...isolation,
      "--die-with-parent",
      "--info-fd",
      String(BWRAP_INFO_FD),
      "--chdir",
      input.cwd,
      "--",
      ...inner,
    ],
    pidNamespace: true,
  };
}

/**
 * The process runtime under bubblewrap: the whole host filesystem as it is (devices included),
 * only a new PID namespace (with its own /proc) so the step's process tree can be killed whole.
 */
function processNamespaceArgs(): string[] {
  return ["--dev-bind", "/", "/", "--proc", "/proc", "--unshare-pid"];
}

/**
 * The sandbox runtime: a fresh root holding read-only /usr and /etc (plus the /bin, /lib…
 * entries as on the host), a minimal /dev, its own /proc, a small tmpfs /tmp, the attempt
 * workdir read-write and the staging root read-only, everything else absent; the root itself is
 * then made read-only. New PID, IPC, UTS (and cgroup where possible) namespaces; a new, empty
 * network namespace (loopback only) in sealed mode; all capabilities dropped; a new session
 * (no terminal to inject input into).
 */
async function sandboxArgs(input: LaunchInput): Promise<string[]> {
  const args = [
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    ...(input.sealed ? ["--unshare-net"] : []),
    "--hostname",
    "packrun",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/usr",
    "/usr",
    ...(await topLevelSystemEntries()),
    "--ro-bind",
    "/etc",
    "/etc",
    // Where /etc/resolv.conf points on systemd-resolved hosts (absent elsewhere).
    "--ro-bind-try",
    "/run/systemd/resolve",
    "/run/systemd/resolve",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--size",
    String(SANDBOX_TMPFS_BYTES),
    "--tmpfs",
    "/tmp",
    // Bound after /tmp: the workdir usually lives under the host's /tmp.
    "--bind",
    input.layout.workdir,
    input.layout.workdir,
    "--ro-bind",
    input.stagingRoot,
    input.stagingRoot,
    "--remount-ro",
    "/",
  ];
  return args;
}

let systemEntries: Promise<string[]> | undefined;

/** /bin, /sbin, /lib… reproduced as on the host: symlinks into /usr (merged /usr) or read-only binds. */
function topLevelSystemEntries(): Promise<string[]> {
  systemEntries ??= (async () => {
    const args: string[] = [];
    for (const entry of ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]) {
      try {
        const stats = await lstat(entry);
        if (stats.isSymbolicLink()) args.push("--symlink", await readlink(entry), entry);
        else if (stats.isDirectory()) args.push("--ro-bind", entry, entry);
      } catch {
        // absent on this distribution
      }
    }
    return args;
  })();
  return systemEntries;
}
