import { randomUUID } from "node:crypto";
import { access, mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CGROUP_DIR, safeId } from "./podman.ts";

/** Where the cgroup file systems are mounted. */
const CGROUP_ROOT = "/sys/fs/cgroup";
/**
 * The parent of every step's cgroup, shared with the container runtime's: a step's cgroup is
 * `packrun/<worker>.step-<uuid>`, so `reapOrphans(worker)` removes what a dead worker left.
 */
const PARENT = CGROUP_DIR.replace(/^\//, "");
/** CFS period used to express a CPU limit as a quota. */
const CPU_PERIOD_US = 100_000;

/** Per-step resource limits enforced by the kernel for the step's whole process tree. */
export interface CgroupLimits {
  /** Memory of all the step's processes together (v1 memory+swap, v2 memory.max, swap 0). */
  memoryBytes?: number | undefined;
  /** Processes and threads of the step at once. */
  pids?: number | undefined;
  /** CPU time as a number of cores (1.5 = 150 ms every 100 ms). */
  cpus?: number | undefined;
}

/** One step's cgroup: add the sandbox's first process before the step runs, remove after. */
export interface StepCgroup {
  /** Moves a process (and so every process it starts later) into the step's cgroup. */
  add(pid: number): Promise<void>;
  /** Removes the cgroup once its processes are gone; never throws. */
  remove(): Promise<void>;
  /**
   * What the step's processes used, read before {@link remove}: null where the kernel does not
   * say (no `pids.peak` before Linux 6.1; v1 without cpuacct).
   */
  usage(): Promise<CgroupStepUsage | null>;
}

/** A step's usage as its cgroup counted it, over every process it ever had. */
export interface CgroupStepUsage {
  /** User plus system CPU time (`cpu.stat` usage_usec). */
  cpuMicros: number;
  /** Most memory at once (`memory.peak`: the processes' memory, page cache and tmpfs pages). */
  peakMemoryBytes: number;
  /** Most processes (and threads) at once (`pids.peak`). */
  peakProcesses: number;
}

type Layout = { version: 1 } | { version: 2 };

let detected: Promise<Layout | null> | undefined;

/** Which cgroup version this machine has, or null when neither is writable here. */
export function cgroupLayout(): Promise<Layout | null> {
  detected ??= (async () => {
    try {
      await access(path.join(CGROUP_ROOT, "cgroup.controllers"));
      return { version: 2 } as const;
    } catch {
      // not the unified hierarchy
    }
    try {
      for (const controller of ["memory", "pids", "cpu"])
        await access(path.join(CGROUP_ROOT, controller, "cgroup.procs"));
      return { version: 1 } as const;
    } catch {
      return null;
    }
  })();
  return detected;
}

/**
 * Creates a cgroup for one step with the given limits (v1: one per controller, memory, pids and
 * cpu; v2: one directory with those controllers enabled). Processes join it through
 * {@link StepCgroup.add}; children inherit it, so a fork bomb or a memory hog meets the limit
 * of its own step only.
 * @throws Error naming the file that could not be written (the worker is not allowed to
 *   manage cgroups here, for example)
 */
export async function createStepCgroup(
  workerId: string,
  limits: CgroupLimits,
  layout: Layout,
): Promise<StepCgroup> {
  const name = `${safeId(workerId)}.step-${randomUUID()}`;
  if (layout.version === 2) return createV2(name, limits);
  return createV1(name, limits);
}

async function write(file: string, value: string): Promise<void> {
  try {
    await writeFile(file, value);
  } catch (error) {
    throw new Error(`cannot write ${value.trim()} to ${file}: ${(error as Error).message}`);
  }
}

async function createV1(name: string, limits: CgroupLimits): Promise<StepCgroup> {
  const dirs = {
    memory: path.join(CGROUP_ROOT, "memory", PARENT, name),
    pids: path.join(CGROUP_ROOT, "pids", PARENT, name),
    cpu: path.join(CGROUP_ROOT, "cpu", PARENT, name),
  };
  // CPU time is counted by cpuacct: mounted with cpu ("cpu,cpuacct") or as its own hierarchy.
  const accounting = await v1Accounting();
  const cpuacct =
    accounting === "with-cpu" ? dirs.cpu : accounting ? path.join(accounting, PARENT, name) : null;
  const created: string[] = [];
  const cgroup: StepCgroup = {
    async add(pid) {
      for (const dir of created) await write(path.join(dir, "cgroup.procs"), String(pid));
    },
    remove: () => removeAll(created),
    usage: () => (cpuacct ? readV1Usage(dirs.memory, dirs.pids, cpuacct) : Promise.resolve(null)),
  };
  try {
    const all = cpuacct && cpuacct !== dirs.cpu ? [...Object.values(dirs), cpuacct] : dirs;
    for (const dir of Object.values(all)) {
      await mkdir(dir, { recursive: true });
      created.push(dir);
    }
    if (limits.memoryBytes !== undefined) {
      await write(path.join(dirs.memory, "memory.limit_in_bytes"), String(limits.memoryBytes));
      // Swap counts against the same limit where the kernel accounts for it.
      const memsw = path.join(dirs.memory, "memory.memsw.limit_in_bytes");
      if (await exists(memsw)) await write(memsw, String(limits.memoryBytes));
    }
    if (limits.pids !== undefined)
      await write(path.join(dirs.pids, "pids.max"), String(limits.pids));
    if (limits.cpus !== undefined) {
      await write(path.join(dirs.cpu, "cpu.cfs_period_us"), String(CPU_PERIOD_US));
      await write(
        path.join(dirs.cpu, "cpu.cfs_quota_us"),
        String(Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US))),
      );
    }
  } catch (error) {
    await cgroup.remove();
    throw error;
  }
  return cgroup;
}

async function createV2(name: string, limits: CgroupLimits): Promise<StepCgroup> {
  const parent = path.join(CGROUP_ROOT, PARENT);
  const dir = path.join(parent, name);
  const cgroup: StepCgroup = {
    add: (pid) => write(path.join(dir, "cgroup.procs"), String(pid)),
    remove: () => removeAll([dir]),
    usage: () => readV2Usage(dir),
  };
  await mkdir(parent, { recursive: true });
  const wanted = ["memory", "pids", "cpu"];
  const available = (await readFile(path.join(CGROUP_ROOT, "cgroup.controllers"), "utf8")).split(
    /\s+/,
  );
  const enable = wanted
    .filter((controller) => available.includes(controller))
    .map((c) => `+${c}`)
    .join(" ");
  await write(path.join(CGROUP_ROOT, "cgroup.subtree_control"), enable);
  await write(path.join(parent, "cgroup.subtree_control"), enable);
  await mkdir(dir);
  try {
    if (limits.memoryBytes !== undefined) {
      await write(path.join(dir, "memory.max"), String(limits.memoryBytes));
      await write(path.join(dir, "memory.swap.max"), "0");
    }
    if (limits.pids !== undefined) await write(path.join(dir, "pids.max"), String(limits.pids));
    if (limits.cpus !== undefined)
      await write(
        path.join(dir, "cpu.max"),
        `${Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US))} ${CPU_PERIOD_US}`,
      );
  } catch (error) {
    await cgroup.remove();
    throw error;
  }
  return cgroup;
}

let accountingRoot: Promise<string | "with-cpu" | null> | undefined;

/** Where cgroup v1's cpuacct lives: "with-cpu" when co-mounted with cpu, else its own root. */
function v1Accounting(): Promise<string | "with-cpu" | null> {
  accountingRoot ??= (async () => {
    if (await exists(path.join(CGROUP_ROOT, "cpu", "cpuacct.usage"))) return "with-cpu";
    const own = path.join(CGROUP_ROOT, "cpuacct");
    return (await exists(path.join(own, "cpuacct.usage"))) ? own : null;
  })();
  return accountingRoot;
}

async function readV1Usage(
  memoryDir: string,
  pidsDir: string,
  cpuacctDir: string,
): Promise<CgroupStepUsage | null> {
  try {
    const [cpu, memory, pids] = await Promise.all([
      readFile(path.join(cpuacctDir, "cpuacct.usage"), "utf8"),
      readFile(path.join(memoryDir, "memory.max_usage_in_bytes"), "utf8"),
      readFile(path.join(pidsDir, "pids.peak"), "utf8"),
    ]);
    return {
      cpuMicros: Math.round(Number(cpu) / 1000),
      peakMemoryBytes: Number(memory),
      peakProcesses: Number(pids),
    };
  } catch {
    return null;
  }
}

async function readV2Usage(dir: string): Promise<CgroupStepUsage | null> {
  try {
    const [cpu, memory, pids] = await Promise.all(
      ["cpu.stat", "memory.peak", "pids.peak"].map((file) =>
        readFile(path.join(dir, file), "utf8"),
      ),
    );
    const usec = /^usage_usec (\d+)$/m.exec(cpu ?? "")?.[1];
    if (usec === undefined) return null;
    return {
      cpuMicros: Number(usec),
      peakMemoryBytes: Number(memory),
      peakProcesses: Number(pids),
    };
  } catch {
    return null;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * rmdir of cgroups whose last processes may still be exiting (EBUSY until the kernel has reaped
 * them): retries quickly at first, backing off to 100 ms, for up to about 5 s in all.
 */
async function removeAll(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    let waited = 0;
    for (let delay = 1; waited < 5_000; delay = Math.min(delay * 2, 100)) {
      try {
        await rmdir(dir);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") break;
        await sleep(delay);
        waited += delay;
      }
    }
  }
}
