import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { readTextFile } from "./read-text-file.ts";

/** Inputs files are plain JSON; anything this big is a mistake, not a set of input values. */
export const maxInputsFileBytes = 8 * 1024 * 1024;

/** Input values for planning, with where each one came from so errors can point there. */
export interface SuppliedInputs {
  values: Record<string, unknown>;
  /** Input name → the inputs file name or `--input <name>`. */
  sources: ReadonlyMap<string, string>;
}

/**
 * Parses one `--input name=value`. The value is parsed as JSON when it is valid JSON
 * (`count=3` → 3, `debug=true` → true, `tags=["a","b"]` → a list, `cfg={"k":1}` → an object)
 * and kept as a string otherwise (`image=nginx:1.27` → "nginx:1.27"). To pass text that
 * happens to be valid JSON as a string, quote it as JSON: `version='"1.10"'`.
 */
export function parseInputAssignment(assignment: string): [name: string, value: unknown] {
  const equals = assignment.indexOf("=");
  const name = equals < 0 ? "" : assignment.slice(0, equals).trim();
  if (name === "") {
    throw new CliError(
      `--input ${JSON.stringify(assignment)} must have the form name=value`,
      ExitCode.invalidInput,
    );
  }
  const raw = assignment.slice(equals + 1);
  try {
    return [name, JSON.parse(raw)];
  } catch {
    return [name, raw];
  }
}

async function readInputsFile(file: string): Promise<Record<string, unknown>> {
  const text = await readTextFile(file, "inputs file", maxInputsFileBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CliError(`inputs file ${file} is not valid JSON: ${reason}`, ExitCode.invalidInput, {
      cause: error,
    });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    const got =
      parsed === null ? "null" : Array.isArray(parsed) ? "an array" : `a ${typeof parsed}`;
    throw new CliError(
      `inputs file ${file} must hold a JSON object of input values ({"name": value, ...}), got ${got}`,
      ExitCode.invalidInput,
    );
  }
  return parsed as Record<string, unknown>;
}

/**
 * Collects input values from `--inputs FILE.json` and then `--input name=value` flags; a flag
 * overrides the file, and a later flag overrides an earlier one for the same name.
 */
export async function readInputs(options: {
  inputsFile: string | undefined;
  assignments: readonly string[];
}): Promise<SuppliedInputs> {
  // A Map then Object.fromEntries: names such as "__proto__" stay plain own properties.
  const values = new Map<string, unknown>();
  const sources = new Map<string, string>();
  if (options.inputsFile !== undefined) {
    for (const [name, value] of Object.entries(await readInputsFile(options.inputsFile))) {
      values.set(name, value);
      sources.set(name, options.inputsFile);
    }
  }
  for (const assignment of options.assignments) {
    const [name, value] = parseInputAssignment(assignment);
    values.set(name, value);
    sources.set(name, `--input ${name}`);
  }
  return { values: Object.fromEntries(values), sources };
}
