import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PackrunError } from "@packrun/errors";
import { verifiedContent } from "./verified-content.ts";

/** A file opened for writing through an {@link ArtifactFileSystem}. */
export interface WritableFile {
  write(chunk: Uint8Array): Promise<void>;
  /** fsync: the content is durable once this resolves. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The filesystem operations the store uses to write. A seam: tests substitute one that fails
 * like a full disk would.
 */
export interface ArtifactFileSystem {
  mkdir(path: string): Promise<void>;
  /** Creates a new file exclusively. */
  create(path: string): Promise<WritableFile>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync of a directory, so a rename into it survives a crash. */
  syncDirectory(path: string): Promise<void>;
}

/** The real filesystem. */
export const nodeArtifactFileSystem: ArtifactFileSystem = {
  async mkdir(path) {
    await mkdir(path, { recursive: true });
  },
  async create(path) {
    const handle = await open(path, "wx", 0o644);
    return {
      async write(chunk) {
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
      },
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  },
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  async syncDirectory(path) {
    const handle = await open(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** A stored blob. */
export interface StoredContent {
  /** `sha256:<hex>` */
  digest: string;
  sizeBytes: number;
}

/** Options for {@link ArtifactStore.put}. */
export interface PutOptions {
  /** When given, content with another digest is refused (ARTIFACT_DIGEST_MISMATCH). */
  expectedDigest?: string;
  /** Content above this size is refused (ARTIFACT_TOO_LARGE). */
  maxBytes: number;
}

/** Content-addressed blob store (a filesystem, or an S3-compatible bucket). */
export interface ArtifactStore {
  /** Where the content lives: a directory, or `s3://<bucket>/<prefix>`. */
  readonly root: string;
  /**
   * Streams content to a temporary file while hashing it, fsyncs it, then renames it to
   * `<root>/sha256/<aa>/<hex>`: a digest is only ever visible with its complete content.
   * @throws PackrunError ARTIFACT_STORE_FULL when out of space, ARTIFACT_STORE_FAILED for other
   *   write errors; the temporary file is removed either way
   */
  put(content: AsyncIterable<Uint8Array>, options: PutOptions): Promise<StoredContent>;
  /**
   * Reads stored content in chunks, hashing it on the way.
   * @throws PackrunError ARTIFACT_NOT_FOUND before the first chunk when the content is absent;
   *   ARTIFACT_CORRUPTED after the last one when the bytes do not hash to `digest`
   */
  open(digest: string, chunkBytes?: number): AsyncIterable<Buffer>;
  /** Removes temporary files older than `maxAgeMs` left by a crash. Returns how many. */
  sweepTemporaryFiles(maxAgeMs: number): Promise<number>;
}

const digestPattern = /^sha256:([0-9a-f]{64})$/;
const noSpace = new Set(["ENOSPC", "EDQUOT", "EFBIG"]);

/** Filesystem errors become stable store errors; anything else (the uploader failing) stays. */
function storeError(error: unknown): unknown {
  const errno = error as NodeJS.ErrnoException;
  if (
    error instanceof PackrunError ||
    typeof errno.code !== "string" ||
    !/^E[A-Z]+$/.test(errno.code)
  ) {
    return error;
  }
  const code = errno.code;
  if (noSpace.has(code)) {
    return new PackrunError(
      "ARTIFACT_STORE_FULL",
      `artifact store is out of space (${code}); the artifact was not stored`,
      { cause: error },
    );
  }
  return new PackrunError(
    "ARTIFACT_STORE_FAILED",
    `artifact store could not write (${code}); the artifact was not stored`,
    { cause: error },
  );
}

/** Creates a store rooted at `root` (created on first write). */
export function createArtifactStore(options: {
  root: string;
  fileSystem?: ArtifactFileSystem;
}): ArtifactStore {
  const { root } = options;
  const fs = options.fileSystem ?? nodeArtifactFileSystem;
  const tmpDir = join(root, "tmp");
  const pathOf = (digest: string) => {
    const hex = digestPattern.exec(digest)?.[1];
    if (hex === undefined) throw new PackrunError("REQUEST_INVALID", `bad digest ${digest}`);
    return join(root, "sha256", hex.slice(0, 2), hex);
  };
  return {
    root,
    async put(content, putOptions) {
      const tmp = join(tmpDir, `${randomUUID()}.part`);
      let file: WritableFile | undefined;
      try {
        await fs.mkdir(tmpDir);
        file = await fs.create(tmp);
        const hash = createHash("sha256");
        let size = 0;
        for await (const chunk of content) {
          size += chunk.length;
          if (size > putOptions.maxBytes) {
            throw new PackrunError(
              "ARTIFACT_TOO_LARGE",
              `artifact exceeds the ${putOptions.maxBytes}-byte limit`,
            );
          }
          hash.update(chunk);
          await file.write(chunk);
        }
        await file.sync();
        const closing = file;
        file = undefined;
        await closing.close();
        const digest = `sha256:${hash.digest("hex")}`;
        if (putOptions.expectedDigest !== undefined && putOptions.expectedDigest !== digest) {
          throw new PackrunError(
            "ARTIFACT_DIGEST_MISMATCH",
            `artifact content has digest ${digest}, expected ${putOptions.expectedDigest}`,
          );
        }
        const target = pathOf(digest);
        await fs.mkdir(dirname(target));
        // Same digest, same bytes: replacing an existing blob is harmless and atomic.
        await fs.rename(tmp, target);
        await fs.syncDirectory(dirname(target));
        return { digest, sizeBytes: size };
      } catch (error) {
        await file?.close().catch(() => {});
        await fs.unlink(tmp).catch(() => {});
        throw storeError(error);
      }
    },
    async *open(digest, chunkBytes = 64 * 1024) {
      const path = pathOf(digest);
      try {
        await stat(path);
      } catch (cause) {
        throw new PackrunError(
          "ARTIFACT_NOT_FOUND",
          `artifact content ${digest} is missing from the store`,
          { cause },
        );
      }
      yield* verifiedContent(
        createReadStream(path, { highWaterMark: chunkBytes }) as AsyncIterable<Buffer>,
        digest,
        "the store",
      );
    },
    async sweepTemporaryFiles(maxAgeMs) {
      let names: string[];
      try {
        names = await readdir(tmpDir);
      } catch {
        return 0;
      }
      let removed = 0;
      for (const name of names) {
        if (!name.endsWith(".part")) continue;
        const path = join(tmpDir, name);
        try {
          if (Date.now() - (await stat(path)).mtimeMs < maxAgeMs) continue;
          await unlink(path);
          removed++;
        } catch {
          // Already gone, or another replica's: leave it.
        }
      }
      return removed;
    },
  };
}
