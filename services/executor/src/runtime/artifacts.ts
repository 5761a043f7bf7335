import { createHash } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { openFileInside, PathError, resolveInside } from "./contained-path.ts";
import type { ArtifactRecord } from "./types.ts";

/**
 * Default cap of one artifact's size: the evidence store's own default limit
 * (PACKRUN_EVIDENCE_MAX_ARTIFACT_BYTES), so nothing is hashed that the store would refuse anyway.
 */
export const DEFAULT_MAX_ARTIFACT_BYTES = 4 * 1024 ** 3;

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
 * timeout. Before a byte is read, the file's size (fstat of the opened descriptor, which is what
 * a sparse file claims, not what it occupies) is checked against `maxBytes`.
 */
export async function collectArtifacts(
  workdir: string,
  declared: readonly { name: string; path: string }[],
  required: boolean,
  signal?: AbortSignal,
  maxBytes: number = DEFAULT_MAX_ARTIFACT_BYTES,
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
      const { handle, sizeBytes } = opened;
      if (sizeBytes > maxBytes) {
        await handle.close();
        throw new PathError(tooLarge(what, sizeBytes, maxBytes));
      }
      const hash = createHash("sha256");
      let bytes = 0;
      // The stream closes the handle when it ends, fails or is aborted.
      try {
        await pipeline(
          handle.createReadStream(),
          async (source: AsyncIterable<Buffer>) => {
            for await (const chunk of source) {
              bytes += chunk.length;
              // The file grew after fstat (something of the step still writing): stop at the cap.
              if (bytes > maxBytes) throw new PathError(tooLarge(what, bytes, maxBytes));
              hash.update(chunk);
            }
          },
          ...(signal ? [{ signal }] : []),
        );
      } catch (caught) {
        if (caught instanceof PathError || !signal?.aborted) throw caught;
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

function tooLarge(what: string, sizeBytes: number, maxBytes: number): string {
  return `${what} is ${sizeBytes} bytes (${gib(sizeBytes)}), over the artifact size cap of ${maxBytes} bytes (${gib(maxBytes)}, PACKRUN_EXECUTOR_MAX_ARTIFACT_BYTES)`;
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(bytes % 1024 ** 3 === 0 ? 0 : 2)} GiB`;
}
