import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";

/** Direction of one descriptor of a launched process, as seen by the worker. */
export type StdioDirection = "ignore" | "read" | "write";

/** What to start. */
export interface LaunchOptions {
  /** The complete environment (default: the worker's, as the helper inherited it). */
  env?: Record<string, string>;
  cwd?: string;
  /** Leader of a new session and process group. */
  detached?: boolean;
  /** One entry per descriptor from 0: "read" = its output comes to us, "write" = we feed it. */
  stdio: readonly StdioDirection[];
}

/**
 * A started process, wherever it was forked: the subset of Node's ChildProcess the runtime uses.
 * Events: "exit" (code, signal) once it ended, "close" (code, signal) once its output ended too.
 */
export interface LaunchedProcess extends EventEmitter {
  readonly pid: number;
  /** One stream per "read"/"write" descriptor, null for "ignore". */
  readonly stdio: readonly (Readable | Writable | null)[];
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  kill(signal?: NodeJS.Signals): boolean;
}

/**
 * Starts a process through the spawn helper (spawn-helper.mjs), so that the worker's big heap is
 * never forked; `PACKRUN_EXECUTOR_SPAWN_HELPER=0` spawns directly from the worker instead.
 * Resolves once the process runs (its pid is known).
 * @throws Error when it could not be started (missing program, helper unavailable)
 */
export function launch(
  command: string,
  args: readonly string[],
  options: LaunchOptions,
): Promise<LaunchedProcess> {
  if (!spawnHelperEnabled()) return launchDirect(command, args, options);
  return sharedHelper().launch(command, args, options);
}

/** Steps are started by the spawn helper (unless PACKRUN_EXECUTOR_SPAWN_HELPER=0). */
export function spawnHelperEnabled(): boolean {
  return process.env.PACKRUN_EXECUTOR_SPAWN_HELPER !== "0";
}

function launchDirect(
  command: string,
  args: readonly string[],
  options: LaunchOptions,
): Promise<LaunchedProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      detached: options.detached ?? false,
      stdio: options.stdio.map((direction) => (direction === "ignore" ? "ignore" : "pipe")),
    });
    child.once("error", reject);
    child.once("spawn", () => {
      child.removeListener("error", reject);
      child.on("error", () => {});
      resolve(child as ChildProcess & { pid: number } as unknown as LaunchedProcess);
    });
  });
}

/** Messages of the spawn helper (see spawn-helper.mjs). */
type HelperMessage =
  | { type: "spawned"; id: number; pid: number }
  | { type: "error"; id: number; message: string }
  | { type: "data"; id: number; fd: number; data: Uint8Array }
  | { type: "end"; id: number; fd: number }
  | { type: "exit"; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { type: "close"; id: number; code: number | null; signal: NodeJS.Signals | null };

/** Where the helper's script lives (plain JavaScript, run by the same Node binary). */
const HELPER_SCRIPT = fileURLToPath(new URL("./spawn-helper.mjs", import.meta.url));

/** A process started by the helper, seen from the worker. */
class RemoteProcess extends EventEmitter implements LaunchedProcess {
  pid = 0;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdio: (Readable | Writable | null)[];
  readonly #ended = new Set<number>();
  started: { resolve(child: LaunchedProcess): void; reject(error: Error): void };
  readonly id: number;

  constructor(
    id: number,
    directions: readonly StdioDirection[],
    send: (message: object) => void,
    started: RemoteProcess["started"],
  ) {
    super();
    this.id = id;
    this.started = started;
    this.stdio = directions.map((direction, fd) => {
      if (direction === "read")
        return new Readable({
          read() {},
          destroy(error, callback) {
            send({ type: "destroy", id, fd });
            callback(error);
          },
        });
      if (direction === "write")
        return new Writable({
          write(chunk: Buffer, _encoding, callback) {
            send({ type: "write", id, fd, data: chunk });
            callback();
          },
          final(callback) {
            send({ type: "write", id, fd, end: true });
            callback();
          },
        });
      return null;
    });
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): boolean {
    if (this.pid === 0 || this.exitCode !== null || this.signalCode !== null) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Applies one message of the helper. Events go out after the launch's awaiter has resumed. */
  receive(message: HelperMessage): void {
    switch (message.type) {
      case "spawned":
        this.pid = message.pid;
        this.started.resolve(this);
        break;
      case "error":
        this.started.reject(new Error(message.message));
        break;
      case "data": {
        const { buffer, byteOffset, byteLength } = message.data;
        (this.stdio[message.fd] as Readable | null)?.push(
          Buffer.from(buffer, byteOffset, byteLength),
        );
        break;
      }
      case "end":
        this.#end(message.fd);
        break;
      case "exit":
        this.exitCode = message.code;
        this.signalCode = message.signal;
        setImmediate(() => this.emit("exit", message.code, message.signal));
        break;
      case "close":
        // After "exit" (emitted in an earlier immediate) and after the buffered output flowed.
        setImmediate(() => setImmediate(() => this.emit("close", message.code, message.signal)));
        break;
    }
  }

  #end(fd: number): void {
    const stream = this.stdio[fd];
    if (!(stream instanceof Readable) || this.#ended.has(fd)) return;
    this.#ended.add(fd);
    stream.push(null);
  }

  /** The helper died: the process died with it (bubblewrap's --die-with-parent, or was killed). */
  lost(): void {
    this.started.reject(new Error("the spawn helper exited"));
    for (let fd = 0; fd < this.stdio.length; fd++) this.#end(fd);
    if (this.exitCode === null && this.signalCode === null)
      this.receive({ type: "exit", id: this.id, code: null, signal: "SIGKILL" });
    this.receive({ type: "close", id: this.id, code: null, signal: "SIGKILL" });
  }
}

/**
 * The worker's side of the spawn helper: starts it on first use, restarts it if it dies (the
 * processes it had started are reported killed), and keeps the worker's event loop alive only
 * while something it launched still runs.
 */
class SpawnHelper {
  #child: ChildProcess | null = null;
  #nextId = 1;
  /** Every process started and not yet closed, by request id. */
  readonly #launched = new Map<number, RemoteProcess>();
  /** Those that keep the worker alive (not background). */
  readonly #running = new Set<number>();

  launch(
    command: string,
    args: readonly string[],
    options: LaunchOptions,
  ): Promise<LaunchedProcess> {
    return new Promise((resolve, reject) => {
      const child = this.#helper();
      const id = this.#nextId++;
      const send = (message: object): void => {
        if (child.connected) child.send(message);
      };
      const remote = new RemoteProcess(id, options.stdio, send, { resolve, reject });
      this.#launched.set(id, remote);
      this.#running.add(id);
      this.#refresh();
      remote.once("close", () => {
        this.#launched.delete(id);
        this.#running.delete(id);
        this.#refresh();
      });
      const started = remote.started;
      remote.started = {
        resolve: started.resolve,
        reject: (error) => {
          this.#launched.delete(id);
          this.#running.delete(id);
          this.#refresh();
          started.reject(error);
        },
      };
      send({
        type: "spawn",
        id,
        command,
        args: [...args],
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        detached: options.detached ?? false,
        stdio: [...options.stdio],
      });
    });
  }

  /** A process of ours that no longer keeps the worker alive. */
  background(id: number): void {
    this.#running.delete(id);
    this.#refresh();
  }

  /** Pid of the helper process (started if need be). */
  pid(): number | undefined {
    return this.#helper().pid;
  }

  #helper(): ChildProcess {
    if (this.#child?.connected) return this.#child;
    // A small heap is all it needs: it holds only output in flight (at most a few MiB).
    const child: ChildProcess = spawn(
      process.execPath,
      ["--max-old-space-size=64", HELPER_SCRIPT],
      { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" },
    );
    child.on("error", () => {});
    child.on("message", (message: HelperMessage) =>
      this.#launched.get(message.id)?.receive(message),
    );
    child.once("exit", () => {
      if (this.#child === child) this.#child = null;
      for (const remote of [...this.#launched.values()]) remote.lost();
    });
    this.#child = child;
    this.#refresh();
    return child;
  }

  /** The helper keeps the worker alive only while a launched process runs. */
  #refresh(): void {
    const child = this.#child;
    if (!child) return;
    const channel = child.channel as { ref(): void; unref(): void } | null | undefined;
    if (this.#running.size > 0) {
      child.ref();
      channel?.ref();
    } else {
      child.unref();
      channel?.unref();
    }
  }
}

/**
 * Lets a long-running helper process (a namespace holder, slirp4netns serving a prepared
 * namespace) run on without keeping the worker's event loop alive, once nobody awaits it.
 */
export function runInBackground(launched: LaunchedProcess): void {
  if (launched instanceof RemoteProcess) {
    helper?.background(launched.id);
    return;
  }
  const child = launched as unknown as ChildProcess;
  child.unref();
  for (const stream of child.stdio) (stream as { unref?(): void } | null)?.unref?.();
}

let helper: SpawnHelper | undefined;

function sharedHelper(): SpawnHelper {
  helper ??= new SpawnHelper();
  return helper;
}

/** Starts the spawn helper ahead of the first step (the worker calls it at start-up). */
export function startSpawnHelper(): number | undefined {
  if (!spawnHelperEnabled()) return undefined;
  return sharedHelper().pid();
}
