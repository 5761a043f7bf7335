import { createHash, randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { describeFsError, fsErrorExitCode } from "./fs-errors.ts";
import { describeNetworkError } from "./gateway-error.ts";

/** What a download wrote. */
export interface Download {
  bytes: number;
  /** `sha256:<hex>` of the bytes. */
  digest: string;
}

/** A failure while reading the body: the connection broke, so the same call may work later. */
class BodyError extends Error {}

/**
 * Streams `body` into `write`, hashing as it goes. Errors of the body (the connection) become
 * BodyError so the caller can tell them from errors of the destination.
 */
async function pump(
  body: ReadableStream<Uint8Array>,
  write: (chunk: Uint8Array) => Promise<void>,
): Promise<Download> {
  const hash = createHash("sha256");
  let bytes = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        throw new BodyError(describeNetworkError(error), { cause: error });
      }
      if (next.done) break;
      hash.update(next.value);
      bytes += next.value.byteLength;
      await write(next.value);
    }
  } finally {
    reader.releaseLock();
  }
  return { bytes, digest: `sha256:${hash.digest("hex")}` };
}

function digestMismatch(target: string, expected: string, got: string): CliError {
  return new CliError(
    `${target}: the downloaded content does not match its digest (expected ${expected}, got ${got}); nothing was kept`,
    ExitCode.error,
  );
}

/**
 * Writes a response body to `target` atomically: into a temp file beside it, flushed, checked
 * against `expectedDigest` when given, then renamed over the target. A reader never sees a
 * partial file, and a broken or corrupted transfer leaves nothing behind. `target` `-` writes to
 * stdout instead (checked at the end, but necessarily not atomic).
 * @throws CliError: exit 10 when the connection broke, 1 on a digest mismatch, 2 or 1 when the
 * file cannot be written
 */
export async function downloadToFile(
  response: Response,
  target: string,
  options: { expectedDigest?: string | undefined } = {},
): Promise<Download> {
  const body = response.body;
  if (body === null) throw new CliError(`${target}: the answer had no body`, ExitCode.error);
  const check = (download: Download) => {
    if (options.expectedDigest !== undefined && download.digest !== options.expectedDigest)
      throw digestMismatch(target, options.expectedDigest, download.digest);
    return download;
  };
  const broken = (error: BodyError) =>
    new CliError(
      `${target}: download interrupted: ${error.message} (retryable)`,
      ExitCode.retryable,
      {
        cause: error,
      },
    );
  if (target === "-") {
    const stdout = Writable.toWeb(process.stdout).getWriter();
    try {
      return check(await pump(body, (chunk) => stdout.write(chunk)));
    } catch (error) {
      throw error instanceof BodyError ? broken(error) : error;
    } finally {
      stdout.releaseLock();
    }
  }
  const temp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`,
  );
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(temp, "wx", 0o666);
    const file = handle;
    const download = await pump(body, async (chunk) => {
      await file.write(chunk);
    });
    await file.sync();
    await file.close();
    handle = undefined;
    check(download);
    await rename(temp, target);
    return download;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temp, { force: true });
    if (error instanceof CliError) throw error;
    if (error instanceof BodyError) throw broken(error);
    throw new CliError(
      `cannot write ${target}: ${describeFsError(error)}`,
      fsErrorExitCode(error),
      {
        cause: error,
      },
    );
  }
}
