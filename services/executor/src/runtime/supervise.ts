import type { Readable, Writable } from "node:stream";
import { openFileInside, PathError } from "./contained-path.ts";
import { type LaunchedProcess, launch } from "./launcher.ts";
import type { LogSink } from "./log-sink.ts";
import { listProcesses, sendSignal } from "./proc-scan.ts";
import {
  type CgroupLimits,
  type CgroupStepUsage,
  createStepCgroup,
  type StepCgroup,
} from "./step-cgroup.ts";
import {
  attachStepNetwork,
  type EgressPolicy,
  type NetworkTools,
  type StepNetwork,
} from "./step-network.ts";
import { parseTimeReport, signalName, type TimeReport } from "./time-report.ts";
import type { StepWatch } from "./types.ts";
import type { HeldNetwork } from "./warm-networks.ts";

/** File descriptor on which bubblewrap writes its `--info-fd` JSON. */
export const BWRAP_INFO_FD = 4;
/** File descriptor bubblewrap waits on (`--block-fd`) before it runs the step. */
export const BWRAP_BLOCK_FD = 5;

/** How long to keep reading pipes after the step exited, for output still in flight. */
const DRAIN_AFTER_EXIT_MS = 5_000;
/** Cap of what is read from the time report and the info descriptor (the step can write there). */
const SIDE_CHANNEL_BYTES = 64 * 1024;
/** setTimeout's maximum delay. */
const MAX_TIMER_MS = 2_147_483_647;

/** The fully built command line of a step and how its process tree is laid out. */
export interface LaunchPlan {
  command: string;
  args: readonly string[];
  /** The complete environment of the step (nothing is inherited from the worker). */
  env: Record<string, string>;
  cwd: string;
  /** bubblewrap with `--unshare-pid` and `--info-fd 4`: the step lives in its own PID namespace. */
  pidNamespace: boolean;
  /**
   * GNU time wraps the step (PID 2 of the namespace, or the spawned process itself) and writes
   * its report to this file inside the workdir. A file, not a descriptor: Node's extra stdio
   * "pipes" are sockets, which cannot be reopened through /dev/fd.
   */
  timeReport: { workdir: string; file: string } | null;
  /**
   * Open network for the step. "warm": the command joins a namespace prepared ahead (slirp4netns
   * and egress rules already there, warm-networks.ts); its owner, not supervise, closes it.
   * "attach": bubblewrap waits on `--block-fd 5` until slirp4netns and the egress rules are set
   * up in its own new namespace. Null: the namespace stays empty.
   */
  network:
    | { kind: "warm"; held: HeldNetwork }
    | { kind: "attach"; tools: NetworkTools; policy: EgressPolicy }
    | null;
  /**
   * Per-step cgroup limits: the sandbox's first process joins a new cgroup while bubblewrap
   * waits on `--block-fd`, so every process of the step is counted from its start.
   */
  cgroup: {
    layout: { version: 1 } | { version: 2 };
    limits: CgroupLimits;
    workerId: string;
    /** The cgroup measures CPU and peak memory (GNU time is left out of the command line). */
    measures: boolean;
  } | null;
}

/** Termination settings and where output goes. */
export interface SuperviseOptions {
  sink: LogSink;
  timeoutMs: number | null;
  killGraceMs: number;
  signal: AbortSignal;
  /** Registers the step's processes with the worker's lease watchdog. */
  watch?: StepWatch | undefined;
}

/** How the supervised process ended. */
export interface SupervisedExit {
  exitCode: number | null;
  signal: string | null;
  /** Set when we stopped it. */
  stoppedFor: "timeout" | "cancel" | null;
  /**
   * Without GNU time, a PID-namespace sandbox reports "killed by signal N" as exit status 128+N
   * (bubblewrap's init, and its `--json-status-fd`, carry only that number): for an exit status
   * above 128 that we did not cause, this names the signal it may stand for. The step either
   * exited with `exitCode` or died of this signal; nothing outside the sandbox can tell which.
   */
  maybeSignal: string | null;
  report: TimeReport | null;
  /** The command could not be started at all (or its network could not be set up). */
  spawnError: string | null;
  /**
   * The sandbox failed before anything of the step ran: bubblewrap exited 1 and GNU time (the
   * sandbox's first command, which creates its report file at once) never started. Safe to
   * launch again; seen as transient netlink errors when many namespaces are created at once.
   */
  setupFailed: boolean;
  /** bubblewrap's message when `setupFailed` (kept out of the step's log). */
  setupError: string | null;
  /**
   * The step replaced GNU time's report with something that is not a regular file inside its
   * workdir (a FIFO, a symlink out): the step fails with this reason.
   */
  timeReportError: string | null;
}

/**
 * Runs a launch plan to completion: streams stdout/stderr into the sink, enforces the timeout
 * and cancellation (SIGTERM to the step's processes, SIGKILL to all of them after the grace
 * period) and kills whatever is left when the step's main process ends.
 *
 * Process layout: the spawned process is detached, i.e. leader of a new session and process
 * group. In PID-namespace mode that is the outer bubblewrap; the namespace's PID 1 is
 * bubblewrap's reaper and PID 2 is GNU time, and killing PID 1 makes the kernel kill every
 * process in the namespace, including `setsid` double-forked daemons. SIGTERM spares those two
 * wrappers (killing them would skip the grace period and lose the measurements) and goes to
 * everything else in the namespace. Without a namespace the step's process group gets the
 * signals (sparing GNU time the same way), and a process that left the group escapes.
 */
export async function supervise(
  plan: LaunchPlan,
  options: SuperviseOptions,
): Promise<SupervisedExit> {
  const blocked = plan.network?.kind === "attach" || plan.cgroup !== null;
  let child: LaunchedProcess;
  try {
    child = await launch(plan.command, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      detached: true,
      stdio: [
        "ignore",
        "read",
        "read",
        "ignore",
        plan.pidNamespace ? "read" : "ignore",
        blocked ? "write" : "ignore",
      ],
    });
  } catch (error) {
    return notStarted((error as Error).message);
  }
  return superviseProcess(child, plan, options, blocked);
}

/** The result of a step whose command could not be started at all. */
function notStarted(spawnError: string): SupervisedExit {
  return {
    exitCode: null,
    signal: null,
    stoppedFor: null,
    maybeSignal: null,
    report: null,
    spawnError,
    setupFailed: false,
    setupError: null,
    timeReportError: null,
  };
}

function superviseProcess(
  child: LaunchedProcess,
  plan: LaunchPlan,
  options: SuperviseOptions,
  blocked: boolean,
): Promise<SupervisedExit> {
  return new Promise((resolve) => {
    const { sink } = options;
    let stoppedFor: SupervisedExit["stoppedFor"] = null;
    let namespaceInit: number | null = null;
    let namespaceInode: number | null = null;
    let info = "";
    let killTimer: NodeJS.Timeout | undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let exited = false;
    let finished = false;
    let spawnError: string | null = null;

    // Only a namespace attached here is closed here; a warm one belongs to the plan's owner.
    let network: StepNetwork | null = null;
    let cgroup: StepCgroup | null = null;
    let prepareRequested = false;
    // The lease watchdog kills the group (the outer bubblewrap or the unisolated step) and, once
    // known, the PID namespace's init (which takes every process of the step with it).
    const untrack: ((() => void) | undefined)[] = [];
    untrack.push(options.watch?.track({ kind: "process", pid: -child.pid }));
    const blockPipe = (child.stdio[BWRAP_BLOCK_FD] as Writable | null | undefined) ?? null;
    blockPipe?.on("error", () => {});
    /**
     * Once bubblewrap named its sandbox: put it in the step's cgroup and give it its network,
     * then let the step run. A failure kills the sandbox before anything of the step ran.
     */
    const prepare = (pid: number): void => {
      if (!blocked || prepareRequested) return;
      prepareRequested = true;
      (async () => {
        if (plan.cgroup) {
          cgroup = await createStepCgroup(
            plan.cgroup.workerId,
            plan.cgroup.limits,
            plan.cgroup.layout,
          );
          await cgroup.add(pid);
        }
        if (plan.network?.kind === "attach")
          network = await attachStepNetwork(pid, plan.network.tools, plan.network.policy);
      })().then(
        () => {
          if (!exited) {
            blockPipe?.end("go");
            return;
          }
          // The sandbox died while being prepared and complete() has run: undo what came late.
          (network as StepNetwork | null)?.close();
          void (cgroup as StepCgroup | null)?.remove();
        },
        (error: Error) => {
          spawnError = `could not prepare the step's sandbox: ${error.message}`;
          sendSignal(-(child.pid ?? 0), "SIGKILL");
          if (namespaceInit !== null) sendSignal(namespaceInit, "SIGKILL");
        },
      );
    };

    const stdout = sink.stream("stdout");
    const stderr = sink.stream("stderr");
    const [outPipe, errPipe] = [child.stdio[1], child.stdio[2]] as [Readable, Readable];
    const infoPipe = child.stdio[BWRAP_INFO_FD] as Readable | null;
    const streams = infoPipe ? [outPipe, errPipe, infoPipe] : [outPipe, errPipe];
    // bubblewrap's own error, when set-up fails before the step ran, is the first stderr chunk
    // and starts with "bwrap: ". Hold such a chunk until the exit says whether the step ran:
    // then it is either the step's output (written in order) or the set-up error (not the step's).
    let heldStderr: Buffer | null = null;
    let sawOutput = false;
    const releaseHeld = (): void => {
      if (heldStderr) stderr.write(heldStderr);
      heldStderr = null;
    };
    outPipe.on("data", (chunk: Buffer) => {
      sawOutput = true;
      releaseHeld();
      stdout.write(chunk);
    });
    outPipe.on("end", () => stdout.end());
    errPipe.on("data", (chunk: Buffer) => {
      if (
        !sawOutput &&
        plan.pidNamespace &&
        chunk.subarray(0, 7).toString("latin1") === "bwrap: "
      ) {
        sawOutput = true;
        heldStderr = chunk;
        return;
      }
      sawOutput = true;
      releaseHeld();
      stderr.write(chunk);
    });
    infoPipe?.on("data", (chunk: Buffer) => {
      if (namespaceInit !== null || info.length > SIDE_CHANNEL_BYTES) return;
      info += chunk.toString("utf8");
      try {
        const parsed = JSON.parse(info) as { "child-pid"?: number; "pid-namespace"?: number };
        namespaceInit = parsed["child-pid"] ?? null;
        namespaceInode = parsed["pid-namespace"] ?? null;
        if (namespaceInit !== null) {
          untrack.push(options.watch?.track({ kind: "process", pid: namespaceInit }));
          prepare(namespaceInit);
        }
      } catch {
        // incomplete JSON so far
      }
    });
    for (const stream of streams) stream.on("error", () => {});

    const groupId = child.pid;

    const terminate = async (signal: NodeJS.Signals): Promise<void> => {
      if (signal === "SIGKILL") {
        if (namespaceInit !== null) sendSignal(namespaceInit, "SIGKILL");
        sendSignal(-groupId, "SIGKILL");
        return;
      }
      if (plan.pidNamespace && namespaceInode === null) {
        // bubblewrap has not set up the namespace yet: nothing of the step runs, kill outright.
        sendSignal(-groupId, "SIGKILL");
        return;
      }
      if (!plan.pidNamespace && !plan.timeReport) {
        sendSignal(-groupId, signal);
        return;
      }
      const wrappers = plan.timeReport ? 2 : 1;
      for (const proc of await listProcesses()) {
        const inStep = plan.pidNamespace
          ? proc.pidNamespace === namespaceInode && proc.innermostPid > wrappers
          : proc.processGroup === groupId && proc.pid !== groupId;
        if (inStep) sendSignal(proc.pid, signal);
      }
    };

    const stop = (reason: "timeout" | "cancel"): void => {
      if (stoppedFor !== null || exited) return;
      stoppedFor = reason;
      killTimer = setTimeout(() => void terminate("SIGKILL"), options.killGraceMs);
      terminate("SIGTERM").catch(() => terminate("SIGKILL"));
    };

    const onAbort = (): void => stop("cancel");
    options.signal.addEventListener("abort", onAbort, { once: true });
    if (options.signal.aborted) onAbort();
    if (options.timeoutMs !== null) {
      timeoutTimer = setTimeout(
        () => stop("timeout"),
        Math.min(Math.max(options.timeoutMs, 0), MAX_TIMER_MS),
      );
    }

    child.on("error", (error) => {
      spawnError = error.message;
      if (!exited) finish(null, null);
    });
    child.on("exit", (code, signal) => {
      exited = true;
      // The pids may be reused from now on: the watchdog must not kill them any more.
      for (const done of untrack) done?.();
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      options.signal.removeEventListener("abort", onAbort);
      // Whatever the step left behind in its group dies now (the namespace is already gone).
      sendSignal(-groupId, "SIGKILL");
      const drain = setTimeout(() => {
        // Something outside our reach still holds the pipes open (a process that escaped the
        // group without a PID namespace); stop listening rather than wait forever.
        for (const stream of streams) stream.destroy();
        finish(code, signal);
      }, DRAIN_AFTER_EXIT_MS);
      child.once("close", () => {
        clearTimeout(drain);
        finish(code, signal);
      });
    });

    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (finished) return;
      finished = true;
      // Read before the cgroup is removed; only where it replaces GNU time.
      const usage = plan.cgroup?.measures
        ? ((cgroup as StepCgroup | null)?.usage() ?? Promise.resolve(null))
        : Promise.resolve(null);
      void Promise.all([readTimeReport(plan.timeReport), usage]).then(([read, counted]) =>
        complete(code, signal, read, counted),
      );
    };
    const complete = (
      code: number | null,
      signal: NodeJS.Signals | null,
      timeReport: TimeReportText,
      usage: CgroupStepUsage | null,
    ): void => {
      (network as StepNetwork | null)?.close();
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      options.signal.removeEventListener("abort", onAbort);
      const timed = parseTimeReport(timeReport.text);
      let exitCode = timed ? timed.exitCode : code;
      let signalOut = timed ? timed.signal : signal;
      let maybeSignal: string | null = null;
      if (!timed && plan.pidNamespace && exitCode !== null && exitCode > 128) {
        // bubblewrap turns "killed by signal N" into exit status 128+N. Only when we sent the
        // signal ourselves is it known to be one; otherwise say both (see maybeSignal).
        if (stoppedFor !== null) {
          signalOut = signalName(exitCode - 128);
          exitCode = null;
        } else maybeSignal = signalName(exitCode - 128);
      }
      const report: TimeReport | null =
        timed ??
        (usage
          ? {
              exitCode,
              signal: signalOut,
              cpuMicros: usage.cpuMicros,
              peakMemoryBytes: usage.peakMemoryBytes,
            }
          : null);
      // Nothing of the step ran: GNU time (the sandbox's first command, which creates its report
      // at once) never started, or, measured by the cgroup, the sandbox never forked its command
      // (bubblewrap forks it only after setting up; before, the cgroup holds one process).
      const neverRan =
        plan.timeReport !== null
          ? timeReport.absent
          : plan.cgroup?.measures === true && usage !== null && usage.peakProcesses < 2;
      const setupFailed = plan.pidNamespace && neverRan && code === 1 && stoppedFor === null;
      const setupError = setupFailed && heldStderr ? heldStderr.toString("utf8").trim() : null;
      if (!setupFailed) releaseHeld();
      stdout.end();
      stderr.end();
      const result: SupervisedExit = {
        exitCode,
        signal: signalOut,
        stoppedFor,
        maybeSignal,
        report,
        spawnError,
        setupFailed,
        setupError,
        timeReportError: timeReport.refused,
      };
      // The step's processes are gone (its PID namespace ended): its cgroup can go too, off the
      // step's path (rmdir waits until the kernel has reaped them; reapOrphans catches the rest).
      resolve(result);
      void (cgroup as StepCgroup | null)?.remove();
    };
  });
}

/** The time report as read after the step. */
interface TimeReportText {
  /** Its text ("" when absent or unreadable: then the step simply has no metrics). */
  text: string;
  /** The file does not exist at all: GNU time never started. */
  absent: boolean;
  /** Why the file was refused (not a regular file, outside the workdir), else null. */
  refused: string | null;
}

async function readTimeReport(location: LaunchPlan["timeReport"]): Promise<TimeReportText> {
  if (!location) return { text: "", absent: false, refused: null };
  try {
    const opened = await openFileInside(location.workdir, location.file, "time report");
    if (!opened) return { text: "", absent: true, refused: null };
    try {
      const buffer = Buffer.alloc(Math.min(opened.sizeBytes, SIDE_CHANNEL_BYTES));
      // The report is the last thing written; keep the end if the step padded the file.
      const position = Math.max(0, opened.sizeBytes - buffer.length);
      const { bytesRead } = await opened.handle.read(buffer, 0, buffer.length, position);
      return { text: buffer.subarray(0, bytesRead).toString("utf8"), absent: false, refused: null };
    } finally {
      await opened.handle.close();
    }
  } catch (error) {
    if (error instanceof PathError) return { text: "", absent: false, refused: error.message };
    return { text: "", absent: false, refused: null };
  }
}
