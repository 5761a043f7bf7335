import type { Command } from "commander";
import { bundleFailure, renderBundleReport, verifyBundleBytes } from "../bundle-verification.ts";
import { formatOption, type OutputFormat, renderJson } from "../output.ts";
import { readBinaryFile, readKeyFiles } from "../read-binary-file.ts";

interface VerifyOptions {
  key?: string[];
  format: OutputFormat;
}

/**
 * `packrun verify BUNDLE [--key PEM]...`: checks an evidence bundle offline (signature, every
 * member's digest, the plan hash, the transcript's continuity). Prints every check; exits 0 when
 * all pass, 2 when anything was altered (naming what failed).
 */
export function registerVerifyCommand(program: Command): void {
  program
    .command("verify")
    .summary("verify an evidence bundle offline")
    .description(
      "Verify a run's evidence bundle (.tar.gz) without any server: the DSSE signature, the digest " +
        "of every member, the plan against its plan hash, and the transcript's sequence " +
        "continuity. Without --key the bundle's own public key is used, which proves integrity " +
        "but not origin; pass the evidence service's published key(s) to prove both.",
    )
    .argument("<bundle>", "the evidence bundle (.tar.gz)")
    .option(
      "-k, --key <pem>",
      "trusted public key (PEM file); repeat for several",
      (value: string, all: string[] = []) => [...all, value],
    )
    .addOption(formatOption())
    .addHelpText(
      "after",
      "\nExamples:\n  packrun verify run.tar.gz\n  packrun verify run.tar.gz --key evidence-signing.pub.pem\n\nExit 0 when every check passes, 2 when the bundle was altered or a check fails.\n",
    )
    .action(async (bundlePath: string, options: VerifyOptions) => {
      const bundle = await readBinaryFile(bundlePath, "the bundle");
      const keys = await readKeyFiles(options.key ?? []);
      const report = await verifyBundleBytes(bundle, keys, bundlePath);
      process.stdout.write(
        options.format === "json" ? renderJson(report) : renderBundleReport(report),
      );
      const failure = bundleFailure(report, bundlePath);
      if (failure !== undefined) throw failure;
    });
}
