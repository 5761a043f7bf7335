import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildLaunchPlan, type LaunchSupport } from "./launch-plan.ts";
import { podmanGlobalArgs } from "./podman.ts";
import { lastLine, runTool } from "./run-tool.ts";
import { cgroupLayout, createStepCgroup } from "./step-cgroup.ts";
import { attemptLayout } from "./step-env.ts";
import { stepUser, WORKER_IS_ROOT } from "./step-user.ts";
import { findExecutable } from "./tools.ts";

const PROBE_TIMEOUT_MS = 30_000;

/**
 * Tools found on this machine and which runtimes work with them, except whether podman works:
 * what running a step needs (a container step asks {@link containerRuntime} when it comes).
 */
export interface HostSupport extends LaunchSupport {
  /** The sandbox runtime works (bubblewrap with every namespace it uses). */
  sandbox: boolean;
  podman: string | null;
  details: string[];
}

/** Tools found on this machine and which runtimes work with them, podman included. */
export interface RuntimeSupport extends HostSupport {
  /** podman answers with the configured global options. */
  container: boolean;
}

let probedHost: Promise<HostSupport> | undefined;
let probedContainer: Promise<{ works: boolean; detail: string }> | undefined;

/** Probes the machine once per process (later calls share the first probe), podman included. */
export async function runtimeSupport(): Promise<RuntimeSupport> {
  const host = await hostSupport();
  const container = await containerRuntime();
  return { ...host, container: container.works, details: [...host.details, container.detail] };
}

/**
 * {@link runtimeSupport} without podman's check, probed once per process: steps start without
 * waiting for it, and a worker that never runs a container never starts podman (`podman info`
 * is two processes of about 30 MiB each, for a few hundred ms).
 */
export function hostSupport(): Promise<HostSupport> {
  probedHost ??= probe();
  return probedHost;
}

/** Whether the podman {@link hostSupport} found works here, checked once per process. */
export function containerRuntime(): Promise<{ works: boolean; detail: string }> {
  probedContainer ??= checkContainer();
  return probedContainer;
}

async function checkContainer(): Promise<{ works: boolean; detail: string }> {
  const { podman } = await hostSupport();
  if (!podman)
    return {
      works: false,
      detail: "podman missing (Debian packages podman, runc): container runtime unavailable",
    };
  const info = await runTool(
    podman,
    [
      ...podmanGlobalArgs(),
      "info",
      "--format",
      "{{.Version.Version}} {{.Host.OCIRuntime.Name}} cgroups-{{.Host.CgroupsVersion}}",
    ],
    { timeoutMs: PROBE_TIMEOUT_MS },
  );
  const works = info.code === 0;
  return {
    works,
    detail: works
      ? `container runtime: podman ${info.stdout.trim()} (${podmanGlobalArgs().join(" ")})`
      : `container runtime: podman does not work here (${reasonOf(info)})`,
  };
}

async function probe(): Promise<HostSupport> {
  const [bwrap, time, prlimit, podman, setpriv, slirp4netns, nsenter, nft, unshare, sleep] =
    await Promise.all(
      [
        "bwrap",
        "time",
        "prlimit",
        "podman",
        "setpriv",
        "slirp4netns",
        "nsenter",
        "nft",
        "unshare",
        "sleep",
      ].map(findExecutable),
    );
  const details: string[] = [];
  const support: HostSupport = {
    bwrap: bwrap ?? null,
    time: time ?? null,
    prlimit: prlimit ?? null,
    podman: podman ?? null,
    setpriv: setpriv ?? null,
    network:
      slirp4netns && nsenter && nft && unshare
        ? { slirp4netns, nsenter, nft, unshare, ...(sleep ? { sleep } : {}) }
        : null,
    unisolated: process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS === "1",
    ...(await usableCgroups()),
    pidNamespace: false,
    sandbox: false,
    details,
  };

  if (support.cgroupMetrics && !support.unisolated)
    details.push("CPU time and peak memory measured by each step's cgroup (GNU time not needed)");
  else if (support.time)
    details.push(`GNU time at ${support.time}: CPU time and peak memory measured`);
  else details.push("GNU time missing (Debian package time): CPU time and peak memory report 0");
  details.push(
    support.cgroups
      ? `per-step limits: cgroup v${support.cgroups.version} (memory, pids, cpu for the whole step)`
      : "cgroups not writable here: step limits fall back to rlimits per process (prlimit)",
  );
  if (support.unisolated)
    details.push(
      "PACKRUN_EXECUTOR_UNISOLATED_STEPS=1: steps run as the worker on the host, NOT isolated",
    );
  details.push(
    support.network
      ? "open steps: own network namespace through slirp4netns with egress rules (nftables)"
      : "slirp4netns, nsenter or nft missing (Debian packages slirp4netns, util-linux, nftables): open steps get no network",
  );
  if (!support.prlimit)
    details.push("prlimit missing: memory/pids limits not applied to process and sandbox steps");

  if (support.bwrap) {
    const version = await runTool(support.bwrap, ["--version"], { timeoutMs: PROBE_TIMEOUT_MS });
    details.push(`bubblewrap: ${version.stdout.trim() || "unknown version"}`);
    const pidCheck = await runTool(
      support.bwrap,
      [
        "--dev-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--unshare-pid",
        "--die-with-parent",
        "--",
        "true",
      ],
      { timeoutMs: PROBE_TIMEOUT_MS },
    );
    support.pidNamespace = pidCheck.code === 0;
    details.push(
      support.pidNamespace
        ? "process runtime: PID namespace via bubblewrap (no descendant outlives the step)"
        : `process runtime: bubblewrap cannot create a PID namespace (${reasonOf(pidCheck)}); process-group kill only, a setsid/double-forked descendant can survive`,
    );
    const sandboxCheck = await checkSandbox(support);
    support.sandbox = sandboxCheck === null;
    details.push(
      support.sandbox
        ? "sandbox runtime: available (sealed steps run without network)"
        : `sandbox runtime: unavailable (${sandboxCheck}); sealed steps fail closed`,
    );
  } else {
    details.push(
      "bubblewrap missing (Debian package bubblewrap): process runtime uses process-group kill only (a setsid/double-forked descendant can survive); sandbox runtime unavailable; sealed steps fail closed",
    );
  }

  return support;
}

/** Runs `true` with exactly the sandbox flags steps get (sealed variant); null when it works. */
async function checkSandbox(support: HostSupport): Promise<string | null> {
  const root = await mkdtemp(path.join(tmpdir(), "packrun-probe-"));
  try {
    const layout = attemptLayout(root);
    const plan = await buildLaunchPlan(
      {
        argv: ["true"],
        env: { PATH: "/usr/bin:/bin" },
        cwd: root,
        layout,
        stagingRoot: root,
        sealed: true,
        user: stepUser(),
        workerIsRoot: WORKER_IS_ROOT,
        egress: { allowlist: [], deny: [] },
        workerId: `probe-${process.pid}`,
      },
      { ...support, time: null, prlimit: null },
    );
    // The probe is not supervised, so it gets no info descriptor to write to.
    const args = plan.args.filter(
      (arg, index, all) => arg !== "--info-fd" && all[index - 1] !== "--info-fd",
    );
    const result = await runTool(plan.command, args, {
      timeoutMs: PROBE_TIMEOUT_MS,
      env: plan.env,
    });
    return result.code === 0 ? null : reasonOf(result);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function reasonOf(result: { code: number | null; stderr: string; error: string | null }): string {
  return result.error ?? (lastLine(result.stderr) || `exit code ${result.code}`);
}

/**
 * The cgroup layout when this worker can create a step cgroup with limits, and whether such a
 * cgroup reports CPU, peak memory and peak processes (probed once).
 */
async function usableCgroups(): Promise<Pick<LaunchSupport, "cgroups" | "cgroupMetrics">> {
  const layout = await cgroupLayout();
  if (!layout) return { cgroups: null, cgroupMetrics: false };
  try {
    const probe = await createStepCgroup(`probe-${process.pid}`, { pids: 64 }, layout);
    const usage = await probe.usage();
    await probe.remove();
    return { cgroups: layout, cgroupMetrics: usage !== null };
  } catch {
    return { cgroups: null, cgroupMetrics: false };
  }
}
