import type { Command } from "commander";
import { bundleFailure, renderBundleReport, verifyBundleBytes } from "../bundle-verification.ts";
import { CliError } from "../cli-error.ts";
import { ExitCode } from "../exit-codes.ts";
import { formatOption, type OutputFormat, renderJson } from "../output.ts";
import { readBinaryFile } from "../read-binary-file.ts";
import { trustedKeys } from "../trusted-keys.ts";

interface VerifyOptions {
  key?: string[];
  integrityOnly?: boolean;
  format: OutputFormat;
}

/**
 * `packrun verify BUNDLE [--key FILE]... | --integrity-only`: checks an evidence bundle offline
 * (both signatures under the trusted keys, every member in the signed member list, the plan hash,
 * the transcript's continuity). Prints every check; exits 0 when all pass, 6 without a trusted
 * key, 7 when not signed by a trusted key, 2 when anything was altered (naming what failed).
 */
export function registerVerifyCommand(program: Command): void {
  program
    .command("verify")
    .summary("verify an evidence bundle offline")
    .description(
      "Verify a run's evidence bundle (.tar.gz) without any server: the DSSE signatures under " +
        "the trusted keys, that every member is in the signed member list with its digest, the " +
        "plan against its plan hash, and the transcript's sequence continuity. The trusted keys " +
        "come from --key, else the files in PACKRUN_TRUSTED_KEYS, else trustedKeys in the config " +
        "file (PEM, or the JWK Set published " +
        "at /.well-known/packrun/signing-keys); without any, verification fails (exit 6). " +
        "--integrity-only checks with the bundle's own key instead, which proves integrity but " +
        "not origin: anyone can re-sign a bundle with a key of their own.",
    )
    .argument("<bundle>", "the evidence bundle (.tar.gz)")
    .option(
      "-k, --key <pem>",
      "trusted public key file (PEM, or a JWK Set); repeat for several",
      (value: string, all: string[] = []) => [...all, value],
    )
    .option(
      "--integrity-only",
      "without a trusted key, check integrity with the bundle's own key (does NOT prove origin)",
    )
    .addOption(formatOption())
    .addHelpText(
      "after",
      "\nExamples:\n  packrun verify run.tar.gz --key evidence-signing.pub.pem\n" +
        "  curl -fsS $PACKRUN_URL/.well-known/packrun/signing-keys > keys.jwks.json\n" +
        "  packrun verify run.tar.gz --key keys.jwks.json\n" +
        "  PACKRUN_TRUSTED_KEYS=keys.jwks.json packrun verify run.tar.gz\n" +
        "  packrun verify run.tar.gz --integrity-only\n\n" +
        "Exit 0 when every check passes; 2 when the bundle was altered, has a member the signature\n" +
        "does not cover, or is of layout 1; 6 without a trusted key; 7 when a signature does not\n" +
        "verify under the trusted keys.\n",
    )
    .action(async (bundlePath: string, options: VerifyOptions) => {
      const bundle = await readBinaryFile(bundlePath, "the bundle");
      if (options.integrityOnly === true && (options.key ?? []).length > 0)
        throw new CliError(
          "--integrity-only and --key contradict each other: --key checks origin, --integrity-only says there is no trusted key",
          ExitCode.invalidInput,
        );
      const keys = options.integrityOnly === true ? [] : await trustedKeys(options.key ?? []);
      const report = await verifyBundleBytes(bundle, keys, bundlePath, {
        integrityOnly: options.integrityOnly === true,
      });
      process.stdout.write(
        options.format === "json" ? renderJson(report) : renderBundleReport(report),
      );
      const failure = bundleFailure(report, bundlePath);
      if (failure !== undefined) throw failure;
    });
}
