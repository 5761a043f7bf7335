import { Readable } from "node:stream";

/**
 * Starts a chunked download from a gRPC server stream and waits for its first chunk, so a
 * failure the service reports up front (not found, not finished yet) still becomes a problem
 * document instead of a truncated 200. Returns a Readable of all the chunks.
 */
export async function streamedBody(
  chunks: AsyncIterable<{ chunk: Uint8Array }>,
): Promise<Readable> {
  const iterator = chunks[Symbol.asyncIterator]();
  const first = await iterator.next();
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (first.done === true) return;
    yield first.value.chunk;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return;
      yield next.value.chunk;
    }
  }
  return Readable.from(rest(), { objectMode: false });
}
