import { open } from "node:fs/promises";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { describeFsError } from "./fs-errors.ts";

/**
 * Reads a UTF-8 text file named on the command line, at most `maxBytes` of it. Reads in
 * chunks rather than trusting the file size so pipes (`<(...)`, /dev/stdin) work, and so a
 * huge or endless file is refused without being loaded. `what` names the file in errors
 * ("manifest", "inputs file"); every failure is a CliError with exit code 2.
 */
export async function readTextFile(file: string, what: string, maxBytes: number): Promise<string> {
  const fail = (reason: string, cause?: unknown) =>
    new CliError(`cannot read ${what} ${file}: ${reason}`, ExitCode.invalidInput, { cause });
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (error) {
    throw fail(describeFsError(error), error);
  }
  try {
    if ((await handle.stat()).isDirectory()) throw fail("is a directory");
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw fail(`larger than the ${maxBytes}-byte limit`);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    try {
      // fatal: a binary or mis-encoded file is refused instead of silently mangled.
      return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
    } catch (error) {
      throw fail("not valid UTF-8 text", error);
    }
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw fail(describeFsError(error), error);
  } finally {
    await handle.close();
  }
}
