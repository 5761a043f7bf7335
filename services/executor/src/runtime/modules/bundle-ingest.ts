import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { openFileInside, PathError } from "../contained-path.ts";
import { describeTimeout } from "../durations.ts";
import { failedBeforeStart, type ModuleContext, type ModuleResult } from "../module-result.ts";
import { bundleIngestParams, parseParams } from "./params.ts";

/** The `metadata.json` written beside a staged bundle. */
export interface BundleMetadata {
  filename: string;
  /** Lowercase hex, no prefix (as in the directory name). */
  sha256: string;
  sizeBytes: number;
  /** ISO 8601 time of staging. */
  stagedAt: string;
  /** Absolute path the bundle was read from. */
  source: string;
}

/**
 * Directories bundles may be read from besides the attempt workdir, from the colon-separated
 * PACKRUN_BUNDLE_ROOTS environment variable of the worker (operator configuration).
 */
export function bundleRootsFromEnvironment(): string[] {
  return (process.env.PACKRUN_BUNDLE_ROOTS ?? "")
    .split(":")
    .filter((root) => path.isAbsolute(root));
}

/**
 * builtin:bundle.ingest: copies `path` (relative to the attempt workdir, or absolute) to
 * `<stagingRoot>/bundles/<sha256>/<filename>` while hashing it, and only if the SHA-256 of the
 * bytes copied equals `sha256` (bare hex or `sha256:` prefixed) renames the copy into place;
 * then writes `metadata.json` the same way (temp file + rename, so readers never see a partial
 * file). Hashing the copy rather than the source means what is staged is what was verified.
 * Outputs: `path`, `sha256` (hex), `digest` (`sha256:<hex>`), `sizeBytes`, `metadata`.
 *
 * The module runs in the worker process, so the source must resolve (symlinks followed) inside
 * the attempt workdir or one of the bundle roots: otherwise a manifest could stage the worker's
 * own files (keys, /etc/shadow) where its steps can read them.
 */
export async function runBundleIngest(context: ModuleContext): Promise<ModuleResult> {
  const { request, sink, layout } = context;
  const params = parseParams("builtin:bundle.ingest", bundleIngestParams, request.with);
  if (!params.ok) return failedBeforeStart(params.reason);
  const expected = params.value.sha256.replace(/^sha256:/, "").toLowerCase();
  const source = path.resolve(layout.workdir, params.value.path);
  const filename = params.value.filename ?? path.basename(source);

  const roots = [layout.workdir, ...(request.bundleRoots ?? bundleRootsFromEnvironment())];
  let opened: Awaited<ReturnType<typeof openFileInside>> = null;
  const refusals: string[] = [];
  for (const root of roots) {
    try {
      opened = await openFileInside(root, source, `bundle ${params.value.path}`);
      break;
    } catch (error) {
      if (!(error instanceof PathError)) throw error;
      refusals.push(error.message);
    }
  }
  if (!opened && refusals.length === roots.length) {
    const notRegular = refusals.find((message) => message.includes(" is not a regular file"));
    return failedBeforeStart(
      notRegular ??
        `bundle ${params.value.path} is outside the directories bundles may be read from (the attempt workdir and the configured bundle roots)`,
    );
  }
  if (!opened) return failedBeforeStart(`bundle not found: ${params.value.path}`);

  const directory = path.join(request.stagingRoot, "bundles", expected);
  const target = path.join(directory, filename);
  await mkdir(directory, { recursive: true });
  const temporary = path.join(directory, `.${filename}.${randomUUID()}.tmp`);
  const hash = createHash("sha256");
  let sizeBytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      sizeBytes += chunk.length;
      done(null, chunk);
    },
  });

  const signals = [request.signal];
  if (request.timeoutMs !== null) signals.push(AbortSignal.timeout(request.timeoutMs));
  const stop = AbortSignal.any(signals);
  try {
    await pipeline(
      opened.handle.createReadStream(),
      hashing,
      createWriteStream(temporary, { flags: "wx", mode: 0o644, flush: true }),
      { signal: stop },
    );
  } catch (error) {
    await discard(temporary, directory);
    if (request.signal.aborted) return { ...failedBeforeStart("cancelled"), outcome: "cancelled" };
    if (stop.aborted) {
      const limit = describeTimeout(request.timeoutMs ?? 0);
      return { ...failedBeforeStart(`timed out after ${limit}`), outcome: "timed_out" };
    }
    return failedBeforeStart(`could not stage ${filename}: ${(error as Error).message}`);
  }

  const actual = hash.digest("hex");
  if (actual !== expected) {
    await discard(temporary, directory);
    return failedBeforeStart(
      `sha256 mismatch for ${filename}: expected ${expected}, got ${actual}`,
    );
  }
  await rename(temporary, target);

  const metadata: BundleMetadata = {
    filename,
    sha256: actual,
    sizeBytes,
    stagedAt: new Date().toISOString(),
    source,
  };
  const metadataPath = path.join(directory, "metadata.json");
  const metadataTemporary = path.join(directory, `.metadata.json.${randomUUID()}.tmp`);
  await writeFile(metadataTemporary, `${JSON.stringify(metadata, null, 2)}\n`, { flush: true });
  await rename(metadataTemporary, metadataPath);

  sink.line("stdout", `staged ${filename} (${sizeBytes} bytes, sha256 ${actual}) at ${target}`);
  return {
    outcome: "succeeded",
    exitCode: null,
    signal: null,
    reason: "bundle verified and staged",
    cpuMicros: 0,
    peakMemoryBytes: 0,
    outputs: {
      path: target,
      sha256: actual,
      digest: `sha256:${actual}`,
      sizeBytes: String(sizeBytes),
      metadata: metadataPath,
    },
    readsOutputFile: false,
  };
}

/** Removes a rejected copy, and its directory when nothing else was staged there. */
async function discard(temporary: string, directory: string): Promise<void> {
  await rm(temporary, { force: true });
  await rmdir(directory).catch(() => {});
}
