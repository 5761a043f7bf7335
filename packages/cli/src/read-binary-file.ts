import { readFile } from "node:fs/promises";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { describeFsError } from "./fs-errors.ts";

/**
 * Reads a file named on the command line whole (a bundle, a key); `what` names it in the
 * error, which is a CliError with exit code 2.
 */
export async function readBinaryFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CliError(
      `${path}: cannot read ${what}: ${describeFsError(error)}`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
}

/** Reads PEM public key files (`--key`, repeatable). */
export function readKeyFiles(paths: readonly string[]): Promise<string[]> {
  return Promise.all(
    paths.map(async (path) => (await readBinaryFile(path, "the key")).toString("utf8")),
  );
}
