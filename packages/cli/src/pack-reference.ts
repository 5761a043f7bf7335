import type { PackRef } from "./api-types.ts";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";

/**
 * Parses `name` or `name@version` (as given to `--pack`): the version, when present, is the
 * exact published version; without it the gateway takes the latest.
 * @throws CliError (exit 2) for an empty name or version
 */
export function parsePackReference(text: string): PackRef {
  const at = text.lastIndexOf("@");
  const name = at < 0 ? text : text.slice(0, at);
  const version = at < 0 ? undefined : text.slice(at + 1);
  if (name.trim() === "" || version?.trim() === "") {
    throw new CliError(
      `--pack ${JSON.stringify(text)} must be NAME or NAME@VERSION`,
      ExitCode.invalidInput,
    );
  }
  return version === undefined ? { name } : { name, version };
}
