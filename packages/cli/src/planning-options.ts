import { type PlanResult, planPack } from "@packrun/planning";
import type { Command } from "commander";
import { addManifestArgument, type ManifestOptions, manifestPath } from "./manifest-argument.ts";
import { type ManifestFile, readManifestFile, reportingDiagnostics } from "./manifest-file.ts";
import { formatOption, type OutputFormat } from "./output.ts";
import { readInputs } from "./read-inputs.ts";

/** Options shared by `plan` and `simulate`. */
export interface PlanningOptions extends ManifestOptions {
  inputs?: string | undefined;
  input?: string[] | undefined;
  format: OutputFormat;
  output?: string | undefined;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Adds the manifest, input and output options of the offline planning commands. */
export function addPlanningOptions(command: Command): Command {
  return addManifestArgument(command)
    .option("-i, --inputs <file>", "JSON file holding an object of input values")
    .option(
      "--input <name=value>",
      "one input value, repeatable; the value is parsed as JSON when it is valid JSON " +
        '(3, true, ["a"], "quoted"), else taken as a string; overrides --inputs',
      collect,
    )
    .addOption(formatOption())
    .option("-o, --output <file>", "write the output to this file (atomically) instead of stdout");
}

/** Reads the manifest and inputs named by the options and plans the pack, offline. */
export async function planFromOptions(
  positional: string | undefined,
  options: PlanningOptions,
): Promise<{ manifest: ManifestFile; result: PlanResult }> {
  // Read the manifest first: a missing manifest is the more fundamental problem to report.
  const manifest = await readManifestFile(manifestPath(positional, options));
  const inputs = await readInputs({ inputsFile: options.inputs, assignments: options.input ?? [] });
  const result = reportingDiagnostics(
    manifest.name,
    () => planPack(manifest.text, { inputs: inputs.values }),
    inputs.sources,
  );
  return { manifest, result };
}
