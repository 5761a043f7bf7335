import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { PackrunError } from "@packrun/errors";
import type { FastifyReply, FastifyRequest } from "fastify";

/** A download whose bytes are fixed: their strong validator and their length are known. */
export interface FixedDownload {
  /** Strong entity tag, quoted (`"sha256:…"`). */
  readonly etag: string;
  readonly size: number;
  readonly contentType: string;
  /** Extra headers for 200 and 206 answers (Content-Disposition, Repr-Digest, …). */
  readonly headers: Record<string, string>;
  /** The bytes from the start; a failure before the first chunk is still an error answer. */
  open(): Promise<AsyncIterable<Uint8Array>>;
}

/** Inclusive byte positions of one satisfiable range. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * The one byte range a `Range` header asks for within `size` bytes (RFC 9110 §14.1.2):
 * `undefined` when the header is absent, malformed, not in bytes, or names several ranges
 * (a server may then ignore it and send everything); "unsatisfiable" when it starts past the end.
 * Hand-written because the grammar for one range is three forms, not worth a dependency.
 */
export function parseByteRange(
  header: string | undefined,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header ?? "");
  if (match === null) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    // A suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== "" && Number(last) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

/** Whether an `If-None-Match` list names `etag` (weak comparison, RFC 9110 §13.1.2). */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
  return header.split(",").some((tag) => opaque(tag) === opaque(etag));
}

/** The bytes `start`..`end` (inclusive) of a chunk stream. */
async function* slice(chunks: AsyncIterable<Uint8Array>, start: number, end: number) {
  let offset = 0;
  for await (const chunk of chunks) {
    const from = Math.max(0, start - offset);
    const to = Math.min(chunk.length, end + 1 - offset);
    if (from < to) yield chunk.subarray(from, to);
    offset += chunk.length;
    if (offset > end) return;
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * Answers a GET for `download`, honouring `If-None-Match` (304), `Range` with `If-Range`
 * (206, or 416 past the end) so interrupted downloads resume, and otherwise 200 with
 * `Accept-Ranges: bytes`, `ETag` and `Content-Length`.
 */
export async function sendFixedDownload(
  request: FastifyRequest,
  reply: FastifyReply,
  download: FixedDownload,
): Promise<FastifyReply> {
  reply.header("etag", download.etag).header("accept-ranges", "bytes");
  if (noneMatch(header(request, "if-none-match"), download.etag)) return reply.code(304).send();
  const ifRange = header(request, "if-range");
  // A resume against other bytes (If-Range naming another tag, or a date) gets everything.
  const range =
    ifRange === undefined || ifRange.trim() === download.etag
      ? parseByteRange(header(request, "range"), download.size)
      : undefined;
  if (range === "unsatisfiable") {
    reply.header("content-range", `bytes */${download.size}`);
    throw new PackrunError(
      "RANGE_NOT_SATISFIABLE",
      `the range ${header(request, "range")} lies outside the ${download.size} bytes`,
    );
  }
  const chunks = await download.open();
  reply.type(download.contentType).headers(download.headers);
  if (range === undefined)
    return reply
      .header("content-length", String(download.size))
      .send(Readable.from(chunks, { objectMode: false }));
  return reply
    .code(206)
    .header("content-range", `bytes ${range.start}-${range.end}/${download.size}`)
    .header("content-length", String(range.end - range.start + 1))
    .send(Readable.from(slice(chunks, range.start, range.end), { objectMode: false }));
}

/**
 * Reads a stream that should reproduce bytes already measured, failing (so the response is
 * cut, not completed) if it does not: a resumed download must never splice other bytes.
 */
export async function* verifiedReplay(
  chunks: AsyncIterable<Uint8Array>,
  expected: { sha256: string; size: number },
  onMismatch: () => void = () => {},
): AsyncGenerator<Uint8Array> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.length;
    yield chunk;
  }
  if (size !== expected.size || hash.digest("hex") !== expected.sha256) {
    onMismatch();
    throw new Error("the bytes changed between two reads of the same download");
  }
}

/** SHA-256 (hex) and length of a stream, read to its end. */
export async function measure(
  chunks: AsyncIterable<Uint8Array>,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest("hex"), size };
}
