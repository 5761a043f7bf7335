import { constants } from "node:fs";
import { type FileHandle, open, realpath } from "node:fs/promises";
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
 * output file may be a symlink to a worker file; this refuses it. Returns null when it does not
 * exist.
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
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
    throw new PathError(`${what} resolves outside the workdir (symlink escape refused)`);
  }
  // O_NOFOLLOW: the real path has no symlinks left; one appearing now is a race, refuse it.
  const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new PathError(`${what} is not a regular file`);
    return { handle, sizeBytes: stats.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** True for ENOENT/ENOTDIR errors. */
export function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
