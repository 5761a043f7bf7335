import { readdir, readFile, readlink } from "node:fs/promises";

/** One process as seen in /proc. */
export interface ProcInfo {
  pid: number;
  processGroup: number;
  /** PID inside its innermost PID namespace (last field of `NSpid`). */
  innermostPid: number;
  /** Inode of its PID namespace. */
  pidNamespace: number | null;
}

/** Lists every process visible in /proc; processes that vanish while being read are skipped. */
export async function listProcesses(): Promise<ProcInfo[]> {
  const entries = await readdir("/proc");
  const found = await Promise.all(
    entries.filter((name) => /^\d+$/.test(name)).map((name) => readProcess(Number(name))),
  );
  return found.filter((info): info is ProcInfo => info !== null);
}

async function readProcess(pid: number): Promise<ProcInfo | null> {
  try {
    const [stat, status, namespace] = await Promise.all([
      readFile(`/proc/${pid}/stat`, "utf8"),
      readFile(`/proc/${pid}/status`, "utf8"),
      readlink(`/proc/${pid}/ns/pid`).catch(() => ""),
    ]);
    // The command name (field 2) is in parentheses and may itself contain spaces or ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const nsPids = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [String(pid)];
    const inode = /^pid:\[(\d+)\]$/.exec(namespace)?.[1];
    return {
      pid,
      processGroup: Number(fields[2]),
      innermostPid: Number(nsPids.at(-1)),
      pidNamespace: inode === undefined ? null : Number(inode),
    };
  } catch {
    return null; // exited meanwhile
  }
}

/** Sends a signal, ignoring "no such process" (it already exited). Returns whether it was sent. */
export function sendSignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

/** Reads a process's environment block as NAME=value strings (empty when unreadable). */
export async function readEnviron(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
  } catch {
    return [];
  }
}
