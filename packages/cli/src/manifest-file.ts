import {
  type Diagnostic,
  defaultPackLimits,
  formatDiagnostic,
  formatPath,
  PackValidationError,
} from "@packrun/planning";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { readTextFile } from "./read-text-file.ts";

/** A manifest read from disk: its text and the name it is reported under. */
export interface ManifestFile {
  /** The path as the user typed it, which is what error lines are prefixed with. */
  name: string;
  text: string;
}

/** Reads a manifest file, refusing anything over the planner's size limit unread. */
export async function readManifestFile(file: string): Promise<ManifestFile> {
  return { name: file, text: await readTextFile(file, "manifest", defaultPackLimits.maxBytes) };
}

/** Input diagnostics about a supplied value point at where the value came from. */
const suppliedValueCodes = new Set<string>(["INPUT_INVALID", "INPUT_UNKNOWN"]);

function prefixFor(
  diagnostic: Diagnostic,
  manifestName: string,
  inputSources: ReadonlyMap<string, string>,
): string {
  if (suppliedValueCodes.has(diagnostic.code)) {
    for (const [name, source] of inputSources) {
      if (diagnostic.path === formatPath(["inputs", name])) return source;
    }
  }
  return manifestName;
}

/**
 * Runs a planning call and turns a PackValidationError into a CliError (exit 2) whose lines
 * are `<file>: <path> (line L:C): <message>`, one per diagnostic, so an editor or a person can
 * jump to each problem. Other errors pass through.
 */
export function reportingDiagnostics<T>(
  manifestName: string,
  run: () => T,
  inputSources: ReadonlyMap<string, string> = new Map(),
): T {
  try {
    return run();
  } catch (error) {
    if (!(error instanceof PackValidationError)) throw error;
    const lines = error.diagnostics.map(
      (diagnostic) =>
        `${prefixFor(diagnostic, manifestName, inputSources)}: ${formatDiagnostic(diagnostic)}`,
    );
    const count = error.diagnostics.length;
    throw new CliError(
      `${manifestName} is invalid (${count} problem${count === 1 ? "" : "s"})`,
      ExitCode.invalidInput,
      { cause: error, lines: lines.length > 0 ? lines : [`${manifestName}: ${error.message}`] },
    );
  }
}
