import type { Command } from "commander";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";

/** Options every manifest-reading command accepts. */
export interface ManifestOptions {
  manifest?: string | undefined;
}

/**
 * Lets a command take the manifest either as `--manifest FILE` (`-m`) or as its first
 * argument; scripts tend to spell it out, people at a prompt tend not to.
 */
export function addManifestArgument(command: Command): Command {
  return command
    .argument("[manifest]", "pack manifest file (same as --manifest)")
    .option("-m, --manifest <file>", "pack manifest file (pack.yaml)");
}

/** The manifest path from the argument or the option; exactly one of them must be given. */
export function manifestPath(positional: string | undefined, options: ManifestOptions): string {
  const { manifest } = options;
  if (positional !== undefined && manifest !== undefined && positional !== manifest) {
    throw new CliError(
      `two manifests given (${positional} and --manifest ${manifest}); give one`,
      ExitCode.invalidInput,
    );
  }
  const file = manifest ?? positional;
  if (file === undefined || file === "") {
    throw new CliError(
      "no manifest given: pass --manifest FILE (or the file as an argument)",
      ExitCode.invalidInput,
    );
  }
  return file;
}
