/**
 * The spawn helper: a small long-lived process that starts every step (and its sandbox's helper
 * tools) on the worker's behalf, so that the worker, 200–300 MiB of heap, never forks: fork
 * copies the parent's page tables and blocks its event loop for longer the bigger it is. The
 * worker starts it (launcher.ts) and talks to it over Node's IPC channel (advanced
 * serialization, so output travels as bytes). It imports only Node built-ins, and it is plain
 * JavaScript so that Node does not load its TypeScript stripper: about 42 MB resident instead of
 * 60, and cheap forks.
 *
 * Protocol (worker → helper): `spawn` (argv, env, cwd, detached, stdio directions "ignore",
 * "read" or "write"), `write` (bytes and/or end for a child's input descriptor), `destroy` (stop
 * reading a descriptor). Helper → worker: `spawned` (pid) or `error`, `data` and `end` per output
 * descriptor, `exit`, `close`. Signals are sent by the worker itself: the pids are the host's.
 *
 * When the worker goes away (its IPC channel closes) the helper kills every process (group) it
 * started and exits: nothing it started outlives the worker through it.
 */
import { spawn } from "node:child_process";

/** Bytes sent but not yet written to the channel above which the children's output is paused. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** @type {Map<number, { child: import("node:child_process").ChildProcess, detached: boolean }>} */
const children = new Map();
/** @type {Set<import("node:stream").Readable>} */
const paused = new Set();
let unsentBytes = 0;

/**
 * @param {object} message
 * @param {number} [bytes] output bytes it carries (for backpressure)
 */
function send(message, bytes = 0) {
  if (!process.connected || !process.send) return;
  unsentBytes += bytes;
  process.send(message, undefined, {}, () => {
    unsentBytes -= bytes;
    if (unsentBytes < HIGH_WATER_BYTES / 2 && paused.size > 0) {
      for (const stream of paused) stream.resume();
      paused.clear();
    }
  });
}

/**
 * @param {{ id: number, command: string, args: string[], env?: Record<string, string>,
 *   cwd?: string, detached: boolean, stdio: ("ignore" | "read" | "write")[] }} request
 */
function start(request) {
  const { id } = request;
  let child;
  try {
    child = spawn(request.command, request.args, {
      ...(request.env === undefined ? {} : { env: request.env }),
      ...(request.cwd === undefined ? {} : { cwd: request.cwd }),
      detached: request.detached,
      stdio: request.stdio.map((direction) => (direction === "ignore" ? "ignore" : "pipe")),
    });
  } catch (error) {
    send({ type: "error", id, message: String(error instanceof Error ? error.message : error) });
    return;
  }
  if (child.pid === undefined) {
    child.once("error", (error) => send({ type: "error", id, message: error.message }));
    return;
  }
  children.set(id, { child, detached: request.detached });
  send({ type: "spawned", id, pid: child.pid });
  child.on("error", () => {});
  request.stdio.forEach((direction, fd) => {
    const stream = child.stdio[fd];
    if (!stream) return;
    stream.on("error", () => {});
    if (direction !== "read") return;
    stream.on("data", (/** @type {Buffer} */ chunk) => {
      send({ type: "data", id, fd, data: chunk }, chunk.length);
      if (unsentBytes > HIGH_WATER_BYTES) {
        stream.pause();
        paused.add(stream);
      }
    });
    stream.on("end", () => send({ type: "end", id, fd }));
  });
  child.on("exit", (code, signal) => send({ type: "exit", id, code, signal }));
  child.on("close", (code, signal) => {
    children.delete(id);
    send({ type: "close", id, code, signal });
  });
}

process.on("message", (/** @type {any} */ request) => {
  if (request.type === "spawn") return start(request);
  const stream = children.get(request.id)?.child.stdio[request.fd];
  if (!stream) return;
  if (request.type === "destroy") {
    paused.delete(stream);
    stream.destroy();
    return;
  }
  if (request.data !== undefined) stream.write(request.data);
  if (request.end) stream.end();
});

process.on("disconnect", () => {
  for (const { child, detached } of children.values()) {
    try {
      if (child.pid !== undefined) process.kill(detached ? -child.pid : child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  process.exit(0);
});
