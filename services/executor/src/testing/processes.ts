import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/** A string unlikely to appear in any other process's command line. */
export function uniqueMarker(): string {
  return `packrun-marker-${randomBytes(8).toString("hex")}`;
}

/**
 * Host pids of the processes whose command line contains `marker`. A step in a PID namespace
 * only knows its namespaced pid, so tests find its processes from the outside this way.
 */
export async function processesWithMarker(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(marker)) found.push(Number(entry));
  }
  return found;
}

/**
 * Polls `check` until it returns a value other than undefined/false, or fails after
 * `timeoutMs` with `what` and the last value seen.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => Promise<string> } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${options.describe === undefined ? "" : `: ${await options.describe()}`}`,
      );
    await sleep(options.intervalMs ?? 50);
  }
}
