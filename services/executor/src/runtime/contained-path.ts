import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, open, readlink, realpath } from "node:fs/promises";
import path from "node:path";

/** Thrown when a path given by a step or a manifest is unusable; the message is for humans. */
export class PathError extends Error {
  override name = "PathError";
}

/**
 * Resolves a relative path inside `root` lexically: rejects absolute paths, empty paths and any
 * `..` segment (even one that would stay inside), so a manifest cannot even name a file outside.
 */
export function resolveInside(root: string, relative: string, what: string): string {
  if (relative === "" || path.isAbsolute(relative)) {
    throw new PathError(`${what} must be a relative path inside the workdir, got "${relative}"`);
  }
  if (relative.split(/[\\/]+/).includes("..")) {
    throw new PathError(`${what} must not contain "..": "${relative}"`);
  }
  return path.join(root, relative);
}

/**
 * Opens a regular file for reading after checking that its real location (all symlinks
 * followed) is inside `root`. Steps write freely in the workdir, so a declared artifact or the
 * output file may be a symlink to a worker file, a FIFO, a socket or a directory; this refuses
 * all of them with a PathError naming `what`. Returns null when it does not exist.
 *
 * Never blocks on a special file: opening a FIFO for reading waits for a writer, which a dead
 * step never provides, and would hold one of libuv's four file-system threads forever (a few
 * such steps wedge every file operation of the worker). O_NONBLOCK makes that open return at
 * once; fstat on the opened descriptor (not the path, which the step may swap) then decides.
 */
export async function openFileInside(
  root: string,
  candidate: string,
  what: string,
): Promise<{ handle: FileHandle; sizeBytes: number } | null> {
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  const realRoot = await realpath(root);
  if (!isInside(realRoot, real)) {
    throw new PathError(`${what} resolves outside the workdir (symlink escape refused)`);
  }
  // Refuse special files before opening them at all: opening a device node can have effects of
  // its own (a container step with CAP_MKNOD could create one in its workdir).
  let before: Stats;
  try {
    before = await lstat(real);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  if (!before.isFile()) throw new PathError(`${what} is not a regular file (${fileKind(before)})`);
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: the real path has no symlinks left; one appearing now is a race, refuse it.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if (isNotFound(error)) return null;
    const code = (error as NodeJS.ErrnoException | null)?.code;
    // ELOOP: a symlink was swapped in after realpath; ENXIO: a socket.
    if (code === "ELOOP" || code === "ENXIO" || code === "EACCES")
      throw new PathError(`${what} could not be opened safely (${code})`);
    throw error;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new PathError(`${what} is not a regular file (${fileKind(stats)})`);
    // A directory on the way may have been swapped for a symlink between realpath and open:
    // check where the descriptor really points.
    const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
    if (!isInside(realRoot, opened)) {
      throw new PathError(`${what} resolves outside the workdir (symlink escape refused)`);
    }
    return { handle, sizeBytes: stats.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

function isInside(realRoot: string, real: string): boolean {
  return real === realRoot || real.startsWith(realRoot + path.sep);
}

/** What kind of non-regular file this is, for error messages. */
function fileKind(stats: Stats): string {
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isDirectory()) return "a directory";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSymbolicLink()) return "a symbolic link";
  return "not a file";
}

/** True for ENOENT/ENOTDIR errors. */
export function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
