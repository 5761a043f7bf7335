import { isPackrunError } from "@packrun/errors";
import { CliError } from "./cli-error.ts";
import { exitCodeFor } from "./exit-codes.ts";
import { printable } from "./printable.ts";

/** True when PACKRUN_DEBUG asks for stacks (`1` or `true`). */
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.PACKRUN_DEBUG === "1" || env.PACKRUN_DEBUG === "true";
}

/**
 * Prints an error for a person on stderr and returns the exit code. Expected errors (CliError,
 * PackrunError) print their message; anything else is a bug or an environment problem and
 * prints one line, with the stack only when PACKRUN_DEBUG=1 so normal output stays readable.
 */
export function reportError(
  error: unknown,
  write: (text: string) => void = (text) => process.stderr.write(text),
): number {
  const debug = debugEnabled();
  if (error instanceof CliError) {
    const lines = error.lines.length > 0 ? error.lines : [`error: ${error.message}`];
    write(lines.map((line) => `${printable(line)}\n`).join(""));
  } else if (isPackrunError(error)) {
    write(`error: ${printable(error.message)} [${error.code}]\n`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    const firstLine = message.split("\n", 1)[0] ?? "";
    const hint = debug ? "" : " (set PACKRUN_DEBUG=1 for details)";
    write(`error: unexpected failure: ${printable(firstLine)}${hint}\n`);
  }
  if (debug && error instanceof Error && error.stack !== undefined) write(`${error.stack}\n`);
  return exitCodeFor(error);
}
