/**
 * CPU time and peak memory of the processes a system is made of, read from /proc.
 *
 * CPU of a component is the CPU of its whole process tree: every live process under its root
 * (utime + stime) plus what each of them collected from children it already waited for (cutime +
 * cstime). A step process that ran and exited during the window is therefore counted in its
 * worker; a PostgreSQL backend that exited, in the postmaster. The difference of two snapshots
 * is the CPU the tree used in between.
 *
 * Peak memory is the root process's own peak resident set size (VmHWM), reset at the start of a
 * window by writing 5 to /proc/<pid>/clear_refs (falls back to sampling VmRSS where that is
 * refused).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

let clockTicks = 100;
try {
  clockTicks =
    Number.parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }), 10) || 100;
} catch {
  // keep the Linux default
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime in seconds. */
  cpu: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses: fields start after the last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const field = (n: number) => Number.parseInt(fields[n - 3] ?? "0", 10);
    return {
      pid,
      ppid: field(4),
      cpu: (field(14) + field(15) + field(16) + field(17)) / clockTicks,
    };
  } catch {
    return undefined;
  }
}

function allStats(): Map<number, ProcStat> {
  const stats = new Map<number, ProcStat>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat) stats.set(pid, stat);
  }
  return stats;
}

/** CPU seconds of each root's process tree, from one scan of /proc. */
function treeCpu(roots: readonly number[], stats: Map<number, ProcStat>): number {
  const children = new Map<number, number[]>();
  for (const stat of stats.values()) {
    const list = children.get(stat.ppid) ?? [];
    list.push(stat.pid);
    children.set(stat.ppid, list);
  }
  let total = 0;
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += stats.get(pid)?.cpu ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

function statusKb(pid: number, key: string): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return match ? Number.parseInt(match[1] ?? "0", 10) : 0;
  } catch {
    return 0;
  }
}

/** Resident set size of a process now, in MiB. */
export function rssMiB(pid: number): number {
  return statusKb(pid, "VmRSS") / 1024;
}

/** The components measured: name → root pids (a component may have several processes). */
export type Components = Record<string, readonly number[]>;

/** What a {@link Meter} window measured. */
export interface Usage {
  wallSeconds: number;
  /** CPU seconds per component (process tree), plus `client` (this process) and `total`. */
  cpuSeconds: Record<string, number>;
  /** Peak RSS in MiB per component (largest single root process of the component). */
  peakRssMiB: Record<string, number>;
}

/** Measures CPU and peak memory of some process trees between start() and stop(). */
export class Meter {
  readonly #components: Components;
  /** Components whose memory is reported (node processes: not postgres/redis). */
  readonly #memory: ReadonlySet<string>;
  #startCpu: Record<string, number> = {};
  #startClient = process.cpuUsage();
  #startWall = 0;
  #sampled = new Map<number, number>();
  #timer: NodeJS.Timeout | undefined;
  #hwm = new Set<number>();

  constructor(components: Components, memory: readonly string[]) {
    this.#components = components;
    this.#memory = new Set(memory);
  }

  start(): void {
    const stats = allStats();
    for (const [name, roots] of Object.entries(this.#components)) {
      this.#startCpu[name] = treeCpu(roots, stats);
    }
    this.#startClient = process.cpuUsage();
    this.#startWall = performance.now();
    this.#sampled.clear();
    this.#hwm.clear();
    for (const name of this.#memory) {
      for (const pid of this.#components[name] ?? []) {
        try {
          writeFileSync(`/proc/${pid}/clear_refs`, "5");
          this.#hwm.add(pid);
        } catch {
          // sampled instead
        }
        this.#sampled.set(pid, rssMiB(pid));
      }
    }
    this.#timer = setInterval(() => this.#sample(), 250);
    this.#timer.unref();
  }

  #sample(): void {
    for (const [pid, peak] of this.#sampled) this.#sampled.set(pid, Math.max(peak, rssMiB(pid)));
  }

  stop(): Usage {
    const stats = allStats();
    const wallSeconds = (performance.now() - this.#startWall) / 1000;
    clearInterval(this.#timer);
    this.#sample();
    const cpuSeconds: Record<string, number> = {};
    let total = 0;
    for (const [name, roots] of Object.entries(this.#components)) {
      const used = Math.max(0, treeCpu(roots, stats) - (this.#startCpu[name] ?? 0));
      cpuSeconds[name] = used;
      total += used;
    }
    const client = process.cpuUsage(this.#startClient);
    cpuSeconds.client = (client.user + client.system) / 1e6;
    total += cpuSeconds.client;
    cpuSeconds.total = total;
    const peakRssMiB: Record<string, number> = {};
    for (const name of this.#memory) {
      let peak = 0;
      for (const pid of this.#components[name] ?? []) {
        const hwm = this.#hwm.has(pid) ? statusKb(pid, "VmHWM") / 1024 : 0;
        peak = Math.max(peak, hwm, this.#sampled.get(pid) ?? 0);
      }
      peakRssMiB[name] = peak;
    }
    return { wallSeconds, cpuSeconds, peakRssMiB };
  }
}

/** Postmaster pid of a data directory (first line of postmaster.pid). */
export function postmasterPid(dataDir: string): number {
  return Number.parseInt(
    readFileSync(`${dataDir}/postmaster.pid`, "utf8").split("\n")[0] ?? "",
    10,
  );
}

/** Pid written in a pid file. */
export function pidFromFile(file: string): number {
  return Number.parseInt(readFileSync(file, "utf8").trim(), 10);
}
