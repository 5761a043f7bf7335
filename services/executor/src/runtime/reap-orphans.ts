import { listCgroupChildren, removeCgroupTree } from "./cgroup-usage.ts";
import { CGROUP_DIR, LABELS, podmanGlobalArgs, safeId } from "./podman.ts";
import { listProcesses, readEnviron, sendSignal } from "./proc-scan.ts";
import { runTool } from "./run-tool.ts";
import { REAP_TAG_VARIABLE } from "./step-env.ts";
import { findExecutable } from "./tools.ts";
import { releaseWorkdirMounts, workdirMountSource } from "./workdir-limit.ts";

/**
 * Kills what a dead worker's steps left behind and returns how many containers and processes it
 * removed: containers labelled `packrun.worker=<workerId>` (podman keeps them running after
 * their worker died), processes whose environment carries `PACKRUN_REAP_TAG=<workerId>` (only
 * possible without bubblewrap, where nothing ties a step's processes to the worker's life) and
 * the worker's empty container cgroups; its workdirs' tmpfs mounts are released. Call it for a worker known to be dead, or for this
 * worker's own id at startup; it kills the live steps of a worker still using that id.
 */
export async function reapOrphans(workerId: string): Promise<number> {
  let reaped = 0;
  const podman = await findExecutable("podman");
  if (podman) {
    const global = podmanGlobalArgs();
    const listed = await runTool(podman, [
      ...global,
      "ps",
      "--all",
      "--quiet",
      "--filter",
      `label=${LABELS.worker}=${workerId}`,
    ]);
    const ids = listed.code === 0 ? listed.stdout.split("\n").filter((id) => id.trim() !== "") : [];
    if (ids.length > 0) {
      const removed = await runTool(podman, [...global, "rm", "--force", "--time", "0", ...ids]);
      if (removed.code === 0) reaped += ids.length;
    }
  }

  const tag = `${REAP_TAG_VARIABLE}=${workerId}`;
  for (const proc of await listProcesses()) {
    if (proc.pid === process.pid) continue;
    if ((await readEnviron(proc.pid)).includes(tag) && sendSignal(proc.pid, "SIGKILL")) reaped++;
  }

  // Its workdirs' tmpfs mounts (the worker died before unmounting them).
  const source = workdirMountSource(workerId);
  await releaseWorkdirMounts((mount) => mount.source === source);

  const prefix = `${safeId(workerId)}.`;
  for (const name of await listCgroupChildren(CGROUP_DIR)) {
    if (name.startsWith(prefix)) await removeCgroupTree(`${CGROUP_DIR}/${name}`);
  }
  return reaped;
}
