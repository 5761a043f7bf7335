import { readFile } from "node:fs/promises";
import { lastLine, runTool } from "./run-tool.ts";
import { WORKER_IS_ROOT } from "./step-user.ts";

/** Default size of one attempt's workdir: 1 GiB. */
export const DEFAULT_STEP_DISK_BYTES = 1024 ** 3;

/**
 * Files and directories a workdir may hold: one per 4 KiB of its size (at least 1,024), so that
 * millions of empty files cannot pin the worker's memory in inodes or make cleanup crawl.
 */
export function workdirInodes(bytes: number): number {
  return Math.max(1024, Math.floor(bytes / 4096));
}

/** How long mounting or unmounting may take. */
const MOUNT_TIMEOUT_MS = 10_000;

/** Takes the size limit off a workdir again (after the worker read its outputs and artifacts). */
export type ReleaseWorkdir = () => Promise<void>;

/**
 * Gives an attempt's workdir a size of its own: a tmpfs of `bytes` mounted on it, so that a step
 * that fills its workdir (and its `$TMPDIR`, which lives inside) gets ENOSPC and fails alone, and
 * the worker's disk (its database files, other runs' workdirs) is never filled. A tmpfs lives in
 * memory: its pages are charged to the memory cgroup of the step that wrote them, so a step's
 * files and its processes share its memory limit, and the number of files is bounded too
 * ({@link workdirInodes}). Only a root worker with isolation on can mount;
 * elsewhere the workdir is an ordinary directory (docs/runtimes.md says so). `bytes` 0 turns the
 * limit off. The mount names the worker (its source, see {@link workdirMountSource}), so that
 * the mounts of a worker that died mid-step can be found and released (reapOrphans).
 * @throws Error when a root worker cannot mount (the step must not run without its limit)
 */
export async function limitWorkdir(
  workdir: string,
  bytes: number,
  workerId: string,
): Promise<ReleaseWorkdir> {
  if (bytes <= 0 || !WORKER_IS_ROOT || process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS === "1")
    return async () => {};
  const mounted = await runTool(
    "mount",
    [
      "-t",
      "tmpfs",
      "-o",
      `size=${bytes},nr_inodes=${workdirInodes(bytes)},mode=0755,nosuid,nodev`,
      workdirMountSource(workerId),
      workdir,
    ],
    { timeoutMs: MOUNT_TIMEOUT_MS },
  );
  if (mounted.code !== 0)
    throw new Error(
      `could not limit the step's workdir to ${bytes} bytes (mount tmpfs): ${mounted.error ?? lastLine(mounted.stderr)}`,
    );
  return async () => {
    // Lazy: a process of the step that outlived it must not keep the mount (and its memory).
    await runTool("umount", ["--lazy", workdir], { timeoutMs: MOUNT_TIMEOUT_MS });
  };
}

/** The "device" of a worker's workdir mounts, as /proc/self/mounts lists it. */
export function workdirMountSource(workerId: string): string {
  return `packrun-workdir.${workerId.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/**
 * Unmounts the workdir tmpfs mounts that `matches` selects (by source and mount point), e.g. a
 * dead worker's, or everything below a work root that is being removed. Returns how many.
 */
export async function releaseWorkdirMounts(
  matches: (mount: { source: string; mountPoint: string }) => boolean,
): Promise<number> {
  const table = await readFile("/proc/self/mounts", "utf8").catch(() => "");
  let released = 0;
  for (const line of table.split("\n")) {
    const [source = "", encodedPoint = "", type = ""] = line.split(" ");
    if (type !== "tmpfs" || !source.startsWith("packrun-workdir.")) continue;
    // /proc/self/mounts escapes spaces and the like as octal (\040).
    const mountPoint = encodedPoint.replace(/\\([0-7]{3})/g, (_, octal: string) =>
      String.fromCharCode(Number.parseInt(octal, 8)),
    );
    if (!matches({ source, mountPoint })) continue;
    const unmounted = await runTool("umount", ["--lazy", mountPoint], {
      timeoutMs: MOUNT_TIMEOUT_MS,
    });
    if (unmounted.code === 0) released++;
  }
  return released;
}
