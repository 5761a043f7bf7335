import { readFile } from "node:fs/promises";
import { loadVerificationKeys, type VerificationKey } from "@packrun/attestation";
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

/**
 * Reads trusted public key files (`--key`, repeatable; PACKRUN_TRUSTED_KEYS): each one or more
 * PEM keys, or a JWK Set as published at `/.well-known/packrun/signing-keys`.
 * @throws CliError (exit 2) naming the file that cannot be read or holds no usable key
 */
export async function readKeyFiles(paths: readonly string[]): Promise<VerificationKey[]> {
  const keys = await Promise.all(
    paths.map(async (path) => {
      const text = await readBinaryFile(path, "the trusted key file");
      try {
        return loadVerificationKeys(text, path);
      } catch (error) {
        throw new CliError(
          error instanceof Error ? error.message : String(error),
          ExitCode.invalidInput,
          { cause: error },
        );
      }
    }),
  );
  return keys.flat();
}
