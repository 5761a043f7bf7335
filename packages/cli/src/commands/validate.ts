import { type Diagnostic, loadManifest, PackValidationError } from "@packrun/planning";
import type { Command } from "commander";
import { CliError } from "../cli-error.ts";
import { ExitCode } from "../exit-codes.ts";
import { addManifestArgument, type ManifestOptions, manifestPath } from "../manifest-argument.ts";
import { readManifestFile, reportingDiagnostics } from "../manifest-file.ts";
import { formatOption, type OutputFormat, renderJson } from "../output.ts";
import { printable } from "../printable.ts";

interface ValidateOptions extends ManifestOptions {
  format: OutputFormat;
}

/** What `validate --format json` prints: the verdict, and every problem when invalid. */
interface ValidationReport {
  valid: boolean;
  name?: string;
  version?: string;
  diagnostics: Diagnostic[];
}

/**
 * `packrun validate`: parses and checks a manifest without inputs. Prints
 * `valid: <name>@<version>`, or every problem as `<file>: <path> (line L:C): <message>` on
 * stderr and exits 2; with `--format json` the verdict and problems as JSON on stdout.
 */
export function registerValidateCommand(program: Command): void {
  addManifestArgument(program.command("validate"))
    .summary("check a pack manifest")
    .description(
      "Parse and check a Task Pack manifest: YAML safety, the schema, step ids, module " +
        "parameters and expressions. Needs no inputs and no server.",
    )
    .addOption(formatOption())
    .addHelpText(
      "after",
      "\nExamples:\n  packrun validate pack.yaml\n  packrun validate --manifest packs/scan/pack.yaml --format json\n\n" +
        "Each problem is printed on stderr as `<file>: <path> (line L:C): <message>`; exit 2 when invalid.\n" +
        "JSON output: {valid, name?, version?, diagnostics: [{code, path, line, column, message}]}.\n",
    )
    .action(async (positional: string | undefined, options: ValidateOptions) => {
      const manifest = await readManifestFile(manifestPath(positional, options));
      if (options.format === "json") {
        let report: ValidationReport;
        try {
          const { name, version } = loadManifest(manifest.text).manifest.metadata;
          report = { valid: true, name, version, diagnostics: [] };
        } catch (error) {
          if (!(error instanceof PackValidationError)) throw error;
          report = { valid: false, diagnostics: error.diagnostics };
        }
        process.stdout.write(renderJson(report));
        if (!report.valid) {
          const count = report.diagnostics.length;
          const message = `${manifest.name} is invalid (${count} problem${count === 1 ? "" : "s"})`;
          throw new CliError(message, ExitCode.invalidInput, { lines: [`error: ${message}`] });
        }
        return;
      }
      const model = reportingDiagnostics(manifest.name, () => loadManifest(manifest.text));
      const { name, version } = model.manifest.metadata;
      process.stdout.write(`valid: ${printable(name)}@${printable(version)}\n`);
    });
}
