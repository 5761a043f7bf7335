import { createHash } from "node:crypto";
import { once } from "node:events";
import { Readable } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import tar from "tar-stream";

/** A member whose bytes are in memory. */
export interface BufferMember {
  path: string;
  content: Uint8Array;
}

/** A member streamed from elsewhere; its size and digest are known in advance and checked. */
export interface StreamedMember {
  path: string;
  sizeBytes: number;
  /** `sha256:<hex>` the streamed bytes must have. */
  digest: string;
  open(): AsyncIterable<Uint8Array>;
}

/** One regular file of a tar archive. */
export type ArchiveMember = BufferMember | StreamedMember;

// Fixed metadata: the archive depends on member paths and bytes only.
const fixedHeader = {
  mode: 0o644,
  uid: 0,
  gid: 0,
  uname: "",
  gname: "",
  mtime: new Date(0),
  type: "file" as const,
};

/** gzip OS byte "unknown": the header does not depend on the platform that wrote it. */
const gzipOsUnknown = 0xff;

function comparePaths(a: ArchiveMember, b: ArchiveMember): number {
  return Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));
}

async function writeMember(pack: tar.Pack, member: ArchiveMember): Promise<void> {
  if ("content" in member) {
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        { ...fixedHeader, name: member.path, size: member.content.length },
        Buffer.from(member.content),
        (error) => (error ? reject(error) : resolve()),
      );
    });
    return;
  }
  let entry!: ReturnType<tar.Pack["entry"]>;
  const done = new Promise<void>((resolve, reject) => {
    entry = pack.entry({ ...fixedHeader, name: member.path, size: member.sizeBytes }, (error) =>
      error ? reject(error) : resolve(),
    );
  });
  done.catch(() => {});
  entry.on("error", () => {});
  const hash = createHash("sha256");
  let written = 0;
  for await (const chunk of member.open()) {
    written += chunk.length;
    if (written > member.sizeBytes) break;
    hash.update(chunk);
    if (!entry.write(Buffer.from(chunk))) await once(entry, "drain");
  }
  const digest = `sha256:${hash.digest("hex")}`;
  if (written !== member.sizeBytes || digest !== member.digest) {
    const error = new Error(
      `${member.path}: content changed (expected ${member.sizeBytes} bytes ${member.digest}, read ${written} bytes${written === member.sizeBytes ? ` ${digest}` : ""})`,
    );
    throw error;
  }
  entry.end(() => {});
  await done;
}

/**
 * Writes a deterministic .tar.gz: members sorted by path (bytewise), regular files only, fixed
 * mode/owner/mtime, gzip without name or timestamp. Same members, same bytes.
 * @throws Error when a streamed member's bytes differ from its declared size or digest
 */
export async function* packTarGz(members: readonly ArchiveMember[]): AsyncIterable<Buffer> {
  const sorted = [...members].sort(comparePaths);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.path === sorted[i - 1]?.path)
      throw new Error(`duplicate member ${sorted[i]?.path}`);
  }
  const pack = tar.pack();
  // Failures surface through `feeding` below; the stream's own error event would be uncaught.
  pack.on("error", () => {});
  const gzip = createGzip({ level: 9 });
  gzip.on("error", () => {});
  pack.pipe(gzip);
  const feeding = (async () => {
    for (const member of sorted) await writeMember(pack, member);
    pack.finalize();
  })();
  feeding.catch((error: unknown) => {
    pack.destroy(error as Error);
    gzip.destroy(error as Error);
  });
  let first = true;
  for await (const chunk of gzip as AsyncIterable<Buffer>) {
    if (first && chunk.length > 9) {
      chunk[9] = gzipOsUnknown;
      first = false;
    }
    yield chunk;
  }
  await feeding;
}

/** Collects an async byte stream into one Buffer. */
export async function collectBytes(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Limits applied while reading an untrusted archive. */
export interface ReadArchiveLimits {
  /** Total uncompressed member bytes; default 1 GiB. */
  maxTotalBytes?: number;
  /** Number of members; default 100 000. */
  maxMembers?: number;
}

/** Result of {@link readTarGz}. */
export type ReadArchiveResult =
  | { ok: true; members: Map<string, Buffer> }
  | { ok: false; reason: string };

const safePath = /^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[\x21-\x7e]+$/;

/**
 * Reads an untrusted .tar.gz into memory: regular files only, safe relative paths, no duplicates,
 * within limits. Never throws for bad input: the reason says what is wrong.
 */
export async function readTarGz(
  bytes: Uint8Array,
  limits: ReadArchiveLimits = {},
): Promise<ReadArchiveResult> {
  const maxTotal = limits.maxTotalBytes ?? 1024 ** 3;
  const maxMembers = limits.maxMembers ?? 100_000;
  const members = new Map<string, Buffer>();
  const gunzip = createGunzip();
  const extract = tar.extract();
  const source = Readable.from([Buffer.from(bytes)]);
  source.pipe(gunzip).pipe(extract);
  const failed = new Promise<never>((_, reject) => {
    gunzip.once("error", reject);
    source.once("error", reject);
  });
  failed.catch(() => {});
  let total = 0;
  try {
    const reading = (async () => {
      for await (const entry of extract) {
        const { name, type } = entry.header;
        if (type !== "file")
          throw new Error(`member ${name} is a ${type ?? "?"}, not a regular file`);
        if (!safePath.test(name))
          throw new Error(`member path ${JSON.stringify(name)} is not a safe relative path`);
        if (members.has(name)) throw new Error(`member ${name} appears twice`);
        if (members.size >= maxMembers) throw new Error(`more than ${maxMembers} members`);
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          total += chunk.length;
          if (total > maxTotal) throw new Error(`members exceed ${maxTotal} bytes in total`);
          chunks.push(chunk);
        }
        members.set(name, Buffer.concat(chunks));
      }
    })();
    reading.catch(() => {});
    await Promise.race([reading, failed]);
  } catch (error) {
    source.destroy();
    gunzip.destroy();
    extract.destroy();
    return { ok: false, reason: `not a readable .tar.gz: ${(error as Error).message}` };
  }
  return { ok: true, members };
}
