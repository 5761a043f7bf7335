import type { Dirent } from "node:fs";
import { readdir, readFile, rmdir } from "node:fs/promises";
import path from "node:path";

const CGROUP_ROOT = "/sys/fs/cgroup";

/** CPU time and peak memory charged to a cgroup subtree (0 where the kernel does not say). */
export interface CgroupUsage {
  cpuMicros: number;
  peakMemoryBytes: number;
}

/**
 * Reads the usage of a cgroup (path relative to the hierarchy root) on cgroup v1 (memory,
 * cpuacct controllers) or v2 (memory.peak, cpu.stat). Values are hierarchical, so they include
 * sub-cgroups already removed; memory counts page cache too.
 */
export async function readCgroupUsage(relative: string): Promise<CgroupUsage> {
  const read = async (file: string): Promise<string | null> =>
    readFile(path.join(CGROUP_ROOT, file), "utf8").catch(() => null);
  const v1Memory = await read(path.join("memory", relative, "memory.max_usage_in_bytes"));
  const v1Cpu =
    (await read(path.join("cpuacct", relative, "cpuacct.usage"))) ??
    (await read(path.join("cpu,cpuacct", relative, "cpuacct.usage")));
  const v2Memory = await read(path.join(relative, "memory.peak"));
  const v2Cpu = await read(path.join(relative, "cpu.stat"));
  const v2Usage = v2Cpu ? /^usage_usec (\d+)$/m.exec(v2Cpu)?.[1] : undefined;
  return {
    cpuMicros: v1Cpu ? Math.round(Number(v1Cpu) / 1000) : Number(v2Usage ?? 0),
    peakMemoryBytes: Number(v1Memory ?? v2Memory ?? 0),
  };
}

/**
 * Removes a cgroup subtree in every hierarchy, deepest first. Best effort: a cgroup that still
 * has processes cannot be removed (EBUSY) and is left alone.
 */
export async function removeCgroupTree(relative: string): Promise<void> {
  const roots = await hierarchyRoots();
  await Promise.all(roots.map((root) => removeTree(path.join(root, relative))));
}

/** Names of the sub-cgroups of a cgroup, across every hierarchy. */
export async function listCgroupChildren(relative: string): Promise<string[]> {
  const names = new Set<string>();
  for (const root of await hierarchyRoots()) {
    try {
      for (const entry of await readdir(path.join(root, relative), { withFileTypes: true })) {
        if (entry.isDirectory()) names.add(entry.name);
      }
    } catch {
      // not in this hierarchy
    }
  }
  return [...names];
}

/** The cgroup v2 root and, on v1/hybrid systems, every mounted v1 hierarchy. */
async function hierarchyRoots(): Promise<string[]> {
  const roots = [CGROUP_ROOT];
  try {
    for (const entry of await readdir(CGROUP_ROOT, { withFileTypes: true })) {
      if (entry.isDirectory()) roots.push(path.join(CGROUP_ROOT, entry.name));
    }
  } catch {
    return [];
  }
  return roots;
}

async function removeTree(dir: string): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.isDirectory()) await removeTree(path.join(dir, entry.name));
  }
  await rmdir(dir).catch(() => {});
}
