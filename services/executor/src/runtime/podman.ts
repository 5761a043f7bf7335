import { readFile } from "node:fs/promises";

/**
 * Global podman options that make rootful podman work on the machines this runs on: runc as OCI
 * runtime (crun is not packaged everywhere), cgroupfs instead of systemd (no systemd in
 * containers and CI), and a file events backend (journald may be absent). Operators can
 * replace them with the whitespace-separated PACKRUN_PODMAN_ARGS environment variable.
 */
export function podmanGlobalArgs(): string[] {
  const override = process.env.PACKRUN_PODMAN_ARGS?.trim();
  if (override) return override.split(/\s+/);
  return ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"];
}

/** Label keys put on every step container. */
export const LABELS = {
  worker: "packrun.worker",
  run: "packrun.run",
  step: "packrun.step",
  attempt: "packrun.attempt",
} as const;

/**
 * Explicit `--ulimit` values. podman's defaults (1048576 open files and processes) exceed the
 * hard limits of a worker that is itself in a container without CAP_SYS_RESOURCE, and then
 * runc fails with "error setting rlimits"; so never ask for more than the worker's own hard
 * limit. RLIMIT_NPROC does not restrict root in the container; the pids cgroup limit does.
 */
export async function podmanUlimits(): Promise<string[]> {
  const hard = await hardLimits();
  const nofile = Math.min(hard.nofile ?? 65_536, 65_536);
  const nproc = Math.min(hard.nproc ?? 4_096, 4_096);
  return ["--ulimit", `nofile=${nofile}:${nofile}`, "--ulimit", `nproc=${nproc}:${nproc}`];
}

async function hardLimits(): Promise<{ nofile: number | null; nproc: number | null }> {
  let text = "";
  try {
    text = await readFile("/proc/self/limits", "utf8");
  } catch {
    return { nofile: null, nproc: null };
  }
  const hardOf = (label: string): number | null => {
    const line = text.split("\n").find((candidate) => candidate.startsWith(label));
    const value = line?.slice(label.length).trim().split(/\s+/)[1];
    return value === undefined || value === "unlimited" ? null : Number(value);
  };
  return { nofile: hardOf("Max open files"), nproc: hardOf("Max processes") };
}

/** A worker id made safe for cgroup paths and label filters. */
export function safeId(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 100) || "_";
}

/** Directory (relative to each cgroup hierarchy root) holding the step containers' cgroups. */
export const CGROUP_DIR = "/packrun";

/**
 * The cgroup parent of one step container: `/packrun/<worker>.<container name>`, flat so that
 * removing it after the step leaves nothing behind, and prefixed so that reapOrphans finds a
 * dead worker's leftovers.
 */
export function containerCgroup(workerId: string, containerName: string): string {
  return `${CGROUP_DIR}/${safeId(workerId)}.${containerName}`;
}
