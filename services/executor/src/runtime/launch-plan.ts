import { lstat, mkdtemp, readlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SLIRP } from "./egress-rules.ts";
import { spawnHelperEnabled } from "./launcher.ts";
import type { AttemptLayout } from "./step-env.ts";
import type { StepMount } from "./step-mounts.ts";
import type { EgressPolicy, NetworkTools } from "./step-network.ts";
import type { StepUser } from "./step-user.ts";
import { BWRAP_BLOCK_FD, BWRAP_INFO_FD, type LaunchPlan } from "./supervise.ts";
import { TIME_FORMAT } from "./time-report.ts";
import { takeNetwork, warmNetworkTarget } from "./warm-networks.ts";

/** Size of the sandbox's private /tmp (a tmpfs, i.e. worker memory). TMPDIR points to disk. */
export const SANDBOX_TMPFS_BYTES = 64 * 1024 * 1024;

/** Installed helper binaries (null = missing) and what probing found working. */
export interface LaunchSupport {
  bwrap: string | null;
  time: string | null;
  prlimit: string | null;
  /** bubblewrap can create a PID namespace here. */
  pidNamespace: boolean;
  /** util-linux setpriv, to drop a root worker's steps to the step user. */
  setpriv?: string | null;
  /** slirp4netns, nsenter and nft: outbound network for open steps (none without them). */
  network?: NetworkTools | null;
  /** The machine's cgroup layout, when the worker may manage cgroups (per-step limits). */
  cgroups?: { version: 1 } | { version: 2 } | null;
  /**
   * A step's cgroup reports its CPU time, peak memory and peak processes (cgroup v2 with
   * `pids.peak`): steps then run without GNU time, which stays the fallback elsewhere.
   */
  cgroupMetrics?: boolean;
  /**
   * The operator turned step isolation off (PACKRUN_EXECUTOR_UNISOLATED_STEPS=1, for a
   * development machine without bubblewrap): steps run as the worker, on the host.
   */
  unisolated?: boolean;
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
  /** CPU cores the step may use at most (cgroup CPU quota). */
  cpus?: number | undefined;
  /** The worker's id: the step's cgroup is named after it (see reapOrphans). */
  workerId: string;
  /** Who the step runs as; root workers switch to it with setpriv. */
  user: StepUser;
  /** Whether the worker is root (switch user) or not (user namespace). */
  workerIsRoot: boolean;
  /** Open steps: what they may reach. Ignored for sealed steps, which have no network. */
  egress: EgressPolicy;
  /** The operator's extra host directories (PACKRUN_EXECUTOR_STEP_MOUNTS). */
  mounts?: readonly StepMount[];
}

/** Refusal of a step that cannot be isolated on this worker. */
export class IsolationUnavailableError extends Error {}

/**
 * Builds the command line of a process or sandbox step. Both runtimes isolate the step the same
 * way (see {@link sandboxArgs}): "process" is the name packs use for an open step that needs no
 * image. The step's argv is always passed as separate arguments (never through a shell), each
 * wrapper ending its options with `--` so that an argv starting with `-` stays the step's program:
 *
 *   bwrap … --  [time -f … -o <workdir>/.packrun/time-report --]  [setpriv … --]  [prlimit … --]  argv…
 *
 * GNU time stays outside the user switch so that it can always write its report; bubblewrap
 * sets `no_new_privs` for the whole sandbox.
 * @throws IsolationUnavailableError when the worker lacks what isolation needs
 */
export async function buildLaunchPlan(
  input: LaunchInput,
  support: LaunchSupport,
): Promise<LaunchPlan> {
  const switchUser = input.workerIsRoot && !support.unisolated;
  if (switchUser && !support.setpriv)
    throw new IsolationUnavailableError(
      "step isolation needs setpriv (Debian package util-linux) on a worker running as root",
    );
  // Without cgroups, rlimits are the fallback: per process, and NPROC per uid.
  const cgroups = support.unisolated ? null : (support.cgroups ?? null);
  const measuredByCgroup = cgroups !== null && support.cgroupMetrics === true;
  const time = measuredByCgroup ? null : support.time;
  const inner: string[] = [];
  if (time) {
    inner.push(time, "-f", TIME_FORMAT, "-o", input.layout.timeReportFile, "--");
  }
  if (switchUser && support.setpriv) {
    inner.push(
      support.setpriv,
      `--reuid=${input.user.uid}`,
      `--regid=${input.user.gid}`,
      "--clear-groups",
      "--inh-caps=-all",
      "--ambient-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--",
    );
  }
  if (
    !cgroups &&
    support.prlimit &&
    (input.memoryBytes !== undefined || input.pids !== undefined)
  ) {
    inner.push(support.prlimit);
    if (input.memoryBytes !== undefined) inner.push(`--as=${input.memoryBytes}`);
    if (input.pids !== undefined) inner.push(`--nproc=${input.pids}`);
    inner.push("--");
  }
  inner.push(...input.argv);

  const base = {
    env: input.env,
    cwd: input.cwd,
    timeReport: time ? { workdir: input.layout.workdir, file: input.layout.timeReportFile } : null,
  };
  if (support.unisolated) {
    const [command, ...args] = inner as [string, ...string[]];
    return { ...base, command, args, pidNamespace: false, network: null, cgroup: null };
  }
  if (!support.bwrap)
    throw new IsolationUnavailableError(
      "step isolation needs bubblewrap (Debian package bubblewrap); this worker has none",
    );
  const network = !input.sealed && support.network ? support.network : null;
  const cgroup = cgroups
    ? {
        layout: cgroups,
        workerId: input.workerId,
        limits: { memoryBytes: input.memoryBytes, pids: input.pids, cpus: input.cpus },
        measures: measuredByCgroup,
      }
    : null;
  // A root worker's open step joins a namespace prepared ahead (no slirp4netns, no nft on its
  // path); elsewhere bubblewrap makes the namespace and the network is attached while it waits.
  const warm = network !== null && input.workerIsRoot && useWarmNetworks();
  const sandbox = await sandboxArgs(input, switchUser, !warm);
  const tail = [
    "--die-with-parent",
    "--info-fd",
    String(BWRAP_INFO_FD),
    ...((network && !warm) || cgroup ? ["--block-fd", String(BWRAP_BLOCK_FD)] : []),
    "--chdir",
    input.cwd,
    "--",
    ...inner,
  ];
  if (network && warm) {
    const held = await takeNetwork(network, input.egress);
    return {
      ...base,
      // nsenter joins the namespace and execs bubblewrap: same process, same group.
      command: network.nsenter,
      args: [`--net=${held.namespacePath}`, "--", support.bwrap, ...sandbox, ...tail],
      pidNamespace: true,
      network: { kind: "warm", held },
      cgroup,
    };
  }
  return {
    ...base,
    command: support.bwrap,
    args: [...sandbox, ...tail],
    pidNamespace: true,
    network: network ? { kind: "attach", tools: network, policy: input.egress } : null,
    cgroup,
  };
}

/** Warm network namespaces need the spawn helper and a pool size above 0. */
function useWarmNetworks(): boolean {
  return spawnHelperEnabled() && warmNetworkTarget() > 0;
}

/** Closes a plan's prepared network namespace, if it has one (after its last launch). */
export function releasePlan(plan: LaunchPlan): void {
  if (plan.network?.kind === "warm") plan.network.held.close();
}

/**
 * Every step's sandbox: a fresh root holding read-only /usr and /etc (plus the /bin, /lib…
 * entries as on the host), a minimal /dev, its own /proc, a small tmpfs /tmp, the attempt
 * workdir read-write and the staging root read-only, everything else (the worker's state, keys,
 * database files, other runs) absent; the root itself is then made read-only. New PID, IPC, UTS,
 * network (and cgroup where possible) namespaces: the network namespace is empty for sealed
 * steps, and gets slirp4netns plus egress rules for open ones (see step-network.ts). A new
 * session (no terminal to inject input into). A root worker keeps only the capabilities that
 * GNU time and setpriv need to write the report and switch to the step user; the step itself
 * has none. A non-root worker puts the step in a user namespace as the step user.
 */
async function sandboxArgs(
  input: LaunchInput,
  switchUser: boolean,
  newNetwork: boolean,
): Promise<string[]> {
  const args = [
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    // Without it, the sandbox stays in the prepared namespace its launcher joined.
    ...(newNetwork ? ["--unshare-net"] : []),
    ...(input.workerIsRoot
      ? []
      : ["--unshare-user", "--uid", String(input.user.uid), "--gid", String(input.user.gid)]),
    "--hostname",
    "packrun",
    "--new-session",
    "--cap-drop",
    "ALL",
    ...(switchUser
      ? [
          ...["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_OVERRIDE"].flatMap((cap) => [
            "--cap-add",
            cap,
          ]),
        ]
      : []),
    "--ro-bind",
    "/usr",
    "/usr",
    ...(await topLevelSystemEntries()),
    "--ro-bind",
    "/etc",
    "/etc",
    // Open steps resolve names through slirp's DNS forwarder, the only DNS server they reach.
    ...(input.sealed ? [] : ["--ro-bind", await slirpResolvConf(), "/etc/resolv.conf"]),
    // Where /etc/resolv.conf points on systemd-resolved hosts (absent elsewhere).
    "--ro-bind-try",
    "/run/systemd/resolve",
    "/run/systemd/resolve",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--perms",
    "1777",
    "--size",
    String(SANDBOX_TMPFS_BYTES),
    "--tmpfs",
    "/tmp",
    // Bound after /tmp: the workdir usually lives under the host's /tmp. Their parents exist
    // in the sandbox only as empty, traversable directories (the host's may be 0700 root).
    ...traversableParents([
      input.layout.workdir,
      input.stagingRoot,
      ...(input.mounts ?? []).map((mount) => mount.path),
    ]),
    ...(input.mounts ?? []).flatMap((mount) => [
      mount.writable ? "--bind" : "--ro-bind",
      mount.path,
      mount.path,
    ]),
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

let resolvConf: Promise<string> | undefined;

/** A resolv.conf naming slirp's DNS forwarder, written once per worker process. */
export function slirpResolvConf(): Promise<string> {
  resolvConf ??= (async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "packrun-net-"));
    const file = path.join(dir, "resolv.conf");
    await writeFile(file, SLIRP.resolvConf, { mode: 0o644 });
    return file;
  })();
  return resolvConf;
}

/** `--perms 0755 --dir` for every ancestor of the given paths below `/tmp` or `/`, outermost first. */
function traversableParents(paths: readonly string[]): string[] {
  const parents = new Set<string>();
  for (const target of paths) {
    for (let dir = path.dirname(target); dir !== "/" && dir !== "/tmp"; dir = path.dirname(dir))
      parents.add(dir);
  }
  return [...parents]
    .sort((a, b) => a.length - b.length)
    .flatMap((dir) => ["--perms", "0755", "--dir", dir]);
}
