/**
 * The lease watchdog's thread (see lease-watchdog.ts). It runs its own event loop, so it keeps
 * its deadlines while the worker's main thread is frozen (a long synchronous evaluation, a GC
 * pause, a blocked `spawn`): that is its whole purpose. It imports only Node built-ins and the
 * monotonic clock, so that nothing the main thread loads can slow it down.
 */
import { spawnSync } from "node:child_process";
import { parentPort } from "node:worker_threads";
import type { KillTarget } from "../runtime/types.ts";
import { monotonicMs } from "./monotonic-clock.ts";
import type { WatchdogCommand, WatchdogReport } from "./watchdog-messages.ts";

/** How often deadlines are checked: the latest a kill can come after its deadline. */
const CHECK_INTERVAL_MS = 25;
/** Most time one kill command (e.g. `podman kill`) may take. */
const KILL_COMMAND_TIMEOUT_MS = 10_000;

interface Watched {
  deadline: number;
  targets: Map<number, KillTarget>;
}

const watched = new Map<number, Watched>();
const port = parentPort;
if (port === null) throw new Error("watchdog-thread.ts runs only as a worker thread");

port.on("message", (command: WatchdogCommand) => {
  switch (command.type) {
    case "watch":
      watched.set(command.id, { deadline: command.deadline, targets: new Map() });
      break;
    case "renew": {
      const entry = watched.get(command.id);
      if (entry) entry.deadline = Math.max(entry.deadline, command.deadline);
      break;
    }
    case "track":
      watched.get(command.id)?.targets.set(command.target, command.kill);
      break;
    case "untrack":
      watched.get(command.id)?.targets.delete(command.target);
      break;
    case "release":
      watched.delete(command.id);
      break;
  }
});

setInterval(() => {
  const now = monotonicMs();
  for (const [id, entry] of watched) {
    if (now < entry.deadline) continue;
    watched.delete(id);
    const report: WatchdogReport = {
      type: "fired",
      id,
      overdueMs: Math.round(now - entry.deadline),
      killed: [...entry.targets.values()].map(kill),
    };
    port.postMessage(report);
  }
}, CHECK_INTERVAL_MS);

function kill(target: KillTarget): string {
  if (target.kind === "process") {
    try {
      process.kill(target.pid, "SIGKILL");
      return `SIGKILL ${target.pid}`;
    } catch (error) {
      return `SIGKILL ${target.pid}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
    }
  }
  const [command, ...args] = target.argv as [string, ...string[]];
  const result = spawnSync(command, args, { stdio: "ignore", timeout: KILL_COMMAND_TIMEOUT_MS });
  return `${target.argv.join(" ")}: ${result.error ? result.error.message : `exit ${result.status}`}`;
}
