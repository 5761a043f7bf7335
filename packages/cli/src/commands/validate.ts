import { loadManifest } from "@packrun/planning";
import type { Command } from "commander";
import { addManifestArgument, type ManifestOptions, manifestPath } from "../manifest-argument.ts";
import { readManifestFile, reportingDiagnostics } from "../manifest-file.ts";
import { printable } from "../printable.ts";

/**
 * `packrun validate`: parses and checks a manifest without inputs. Prints
 * `valid: <name>@<version>`, or every problem as `<file>: <path> (line L:C): <message>` on
 * stderr and exits 2.
 */
export function registerValidateCommand(program: Command): void {
  addManifestArgument(program.command("validate"))
    .summary("check a pack manifest")
    .description(
      "Parse and check a Task Pack manifest: YAML safety, the schema, step ids, module " +
        "parameters and expressions. Needs no inputs and no server.",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun validate pack.yaml\n  packrun validate --manifest packs/scan/pack.yaml\n\n" +
        "Each problem is printed on stderr as `<file>: <path> (line L:C): <message>`; exit 2 when invalid.\n",
    )
    .action(async (positional: string | undefined, options: ManifestOptions) => {
      const manifest = await readManifestFile(manifestPath(positional, options));
      const model = reportingDiagnostics(manifest.name, () => loadManifest(manifest.text));
      const { name, version } = model.manifest.metadata;
      process.stdout.write(`valid: ${printable(name)}@${printable(version)}\n`);
    });
}
