import { createHash } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { openFileInside, PathError, resolveInside } from "./contained-path.ts";
import type { ArtifactRecord } from "./types.ts";

/** Hashed artifacts, and the first problem found (a missing or refused artifact). */
export interface ArtifactCollection {
  artifacts: ArtifactRecord[];
  error: string | null;
  /** Collection was stopped by `signal` (the step's deadline or a cancel) before it finished. */
  aborted: boolean;
}

/**
 * Hashes declared artifacts (paths relative to the workdir) with streaming SHA-256. A path that
 * is absolute, uses `..`, or resolves through a symlink to outside the workdir is refused; so is
 * anything but a regular file. With `required`, a missing artifact is an error; otherwise
 * (after a failed step) missing ones are skipped and only what exists is recorded.
 *
 * Hashing is part of the step and runs inside its deadline: `signal` (the step's remaining time
 * and its cancellation) stops it, so a huge artifact cannot hold the worker slot past the step's
 * timeout.
 */
export async function collectArtifacts(
  workdir: string,
  declared: readonly { name: string; path: string }[],
  required: boolean,
  signal?: AbortSignal,
): Promise<ArtifactCollection> {
  const artifacts: ArtifactRecord[] = [];
  let error: string | null = null;
  for (const { name, path: relative } of declared) {
    if (signal?.aborted) {
      return {
        artifacts,
        error: error ?? `stopped before hashing artifact "${name}"`,
        aborted: true,
      };
    }
    const what = `artifact "${name}" (${relative})`;
    try {
      const opened = await openFileInside(workdir, resolveInside(workdir, relative, what), what);
      if (!opened) {
        if (required) error ??= `${what} was not found`;
        continue;
      }
      const { handle } = opened;
      const hash = createHash("sha256");
      let bytes = 0;
      // The stream closes the handle when it ends, fails or is aborted.
      try {
        await pipeline(
          handle.createReadStream(),
          async (source: AsyncIterable<Buffer>) => {
            for await (const chunk of source) {
              hash.update(chunk);
              bytes += chunk.length;
            }
          },
          ...(signal ? [{ signal }] : []),
        );
      } catch (caught) {
        if (!signal?.aborted) throw caught;
        return {
          artifacts,
          error: `stopped while hashing ${what} after ${bytes} bytes`,
          aborted: true,
        };
      }
      artifacts.push({
        name,
        path: relative,
        digest: `sha256:${hash.digest("hex")}`,
        // What was hashed, not what stat said a moment earlier.
        sizeBytes: bytes,
      });
    } catch (caught) {
      if (!(caught instanceof PathError)) throw caught;
      error ??= caught.message;
    }
  }
  return { artifacts, error, aborted: false };
}
