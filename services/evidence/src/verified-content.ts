import { createHash } from "node:crypto";
import { PackrunError } from "@packrun/errors";

/**
 * Passes content through while hashing it, holding back its last chunk until the whole has
 * been checked against `digest` (and `expectedSize` when known): corrupted content ends with
 * ARTIFACT_CORRUPTED before its last bytes, so no reader ever receives all the bytes of
 * something that is not the artifact (a download with a known length is left short, not
 * completed).
 * @throws PackrunError ARTIFACT_CORRUPTED naming the digest and what the bytes hash to
 */
export async function* verifiedContent(
  chunks: AsyncIterable<Buffer>,
  digest: string,
  where: string,
  expectedSize?: number,
): AsyncGenerator<Buffer> {
  const hash = createHash("sha256");
  let size = 0;
  let held: Buffer | undefined;
  for await (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.length;
    if (held !== undefined) yield held;
    held = chunk;
  }
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== digest || (expectedSize !== undefined && expectedSize !== size)) {
    throw new PackrunError(
      "ARTIFACT_CORRUPTED",
      `artifact content ${digest} is corrupted in ${where}: its ${size} bytes hash to ${actual}`,
    );
  }
  if (held !== undefined) yield held;
}
