import { openFileInside, PathError } from "./contained-path.ts";

/** Default cap of the `$PACKRUN_OUTPUT` file. */
export const DEFAULT_MAX_OUTPUT_FILE_BYTES = 1024 * 1024;

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const HEREDOC = /^([^=<]*)<<(.*)$/;

/** Either the parsed outputs or why the file is invalid. */
export type OutputParse =
  | { ok: true; outputs: Record<string, string> }
  | { ok: false; error: string };

/**
 * Parses `$PACKRUN_OUTPUT` content (the GitHub Actions output-file format): `name=value` lines,
 * and `name<<DELIM` … `DELIM` for multi-line values. Blank lines are ignored; a later value for
 * the same name replaces the earlier one. Any other line is an error naming its line number.
 */
export function parseOutputFile(content: string): OutputParse {
  const outputs: Record<string, string> = Object.create(null);
  const lines = content.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
  if (lines.at(-1) === "") lines.pop();
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index] as string;
    const number = index + 1;
    if (line.trim() === "") continue;
    const heredoc = HEREDOC.exec(line);
    const equals = line.indexOf("=");
    if (heredoc && (equals === -1 || equals > line.indexOf("<<"))) {
      const name = heredoc[1] as string;
      const delimiter = heredoc[2] as string;
      if (!NAME.test(name)) return invalid(number, line, "invalid output name");
      if (delimiter === "") return invalid(number, line, "empty delimiter after <<");
      const end = lines.indexOf(delimiter, index + 1);
      if (end === -1) return invalid(number, line, `no closing delimiter line "${delimiter}"`);
      outputs[name] = lines.slice(index + 1, end).join("\n");
      index = end;
      continue;
    }
    if (equals === -1) return invalid(number, line, 'expected "name=value" or "name<<DELIMITER"');
    const name = line.slice(0, equals);
    if (!NAME.test(name)) return invalid(number, line, "invalid output name");
    outputs[name] = line.slice(equals + 1);
  }
  return { ok: true, outputs: { ...outputs } };
}

function invalid(number: number, line: string, problem: string): OutputParse {
  const shown = line.length > 80 ? `${line.slice(0, 80)}…` : line;
  return {
    ok: false,
    error: `invalid $PACKRUN_OUTPUT line ${number} (${JSON.stringify(shown)}): ${problem}`,
  };
}

/**
 * Reads and parses the output file the step wrote (absent = no outputs). Refuses files over
 * `maxBytes`, non-regular files and symlinks leading out of the workdir.
 */
export async function readOutputFile(
  workdir: string,
  file: string,
  maxBytes: number,
): Promise<OutputParse> {
  let opened: Awaited<ReturnType<typeof openFileInside>>;
  try {
    opened = await openFileInside(workdir, file, "$PACKRUN_OUTPUT");
  } catch (error) {
    if (error instanceof PathError) return { ok: false, error: error.message };
    throw error;
  }
  if (!opened) return { ok: true, outputs: {} };
  const { handle, sizeBytes } = opened;
  try {
    if (sizeBytes > maxBytes) {
      return {
        ok: false,
        error: `$PACKRUN_OUTPUT is ${sizeBytes} bytes, over the limit of ${maxBytes} bytes`,
      };
    }
    // Read at most maxBytes+1 even if the file grew after stat.
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > maxBytes) {
      return { ok: false, error: `$PACKRUN_OUTPUT is over the limit of ${maxBytes} bytes` };
    }
    return parseOutputFile(buffer.subarray(0, bytesRead).toString("utf8"));
  } finally {
    await handle.close();
  }
}
