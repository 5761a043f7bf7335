import { readFile } from "node:fs/promises";
import { verifyBundle } from "@packrun/attestation";
import { type Command, Option } from "commander";
import { CliError } from "../cli-error.ts";
import { ExitCode } from "../exit-codes.ts";
import { describeFsError } from "../fs-errors.ts";
import { type OutputFormat, outputFormats, renderJson } from "../output.ts";
import { printable } from "../printable.ts";

interface VerifyOptions {
  key?: string[];
  format: OutputFormat;
}

async function readOrFail(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CliError(
      `${path}: cannot read ${what}: ${describeFsError(error)}`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
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
    .addOption(
      new Option("-f, --format <format>", "output format").choices(outputFormats).default("table"),
    )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun verify run.tar.gz\n  packrun verify run.tar.gz --key evidence-signing.pub.pem\n\nExit 0 when every check passes, 2 when the bundle was altered or a check fails.\n",
    )
    .action(async (bundlePath: string, options: VerifyOptions) => {
      const bundle = await readOrFail(bundlePath, "the bundle");
      const keys = await Promise.all(
        (options.key ?? []).map(async (path) =>
          (await readOrFail(path, "the key")).toString("utf8"),
        ),
      );
      let report: Awaited<ReturnType<typeof verifyBundle>>;
      try {
        // Without --key the bundle's own key is used (integrity, not origin).
        report = await verifyBundle(bundle, keys.length > 0 ? { keys } : {});
      } catch (error) {
        throw new CliError(
          `${bundlePath}: ${error instanceof Error ? error.message : String(error)}`,
          ExitCode.invalidInput,
          { cause: error },
        );
      }
      if (options.format === "json") {
        process.stdout.write(renderJson(report));
      } else {
        const lines = report.checks.map(
          (check) =>
            `${check.ok ? "✔" : "✖"} ${check.check}${check.member === undefined ? "" : ` ${printable(check.member)}`}: ${printable(check.message)}`,
        );
        const summary = report.ok
          ? `verified: run ${printable(report.runId ?? "?")} (${printable(report.pack?.name ?? "?")}@${printable(report.pack?.version ?? "?")}, ${printable(report.status ?? "?")}), plan ${printable(report.planHash ?? "?")}, signed by key ${printable(report.keyId ?? "?")}${report.keyTrusted ? " (trusted)" : " (the bundle's own key: integrity only; pass --key to prove origin)"}`
          : `NOT verified: ${report.failures.length} check(s) failed`;
        process.stdout.write(`${lines.join("\n")}\n${summary}\n`);
      }
      if (!report.ok) {
        const failed = report.failures
          .map((check) => `${check.check}${check.member === undefined ? "" : ` ${check.member}`}`)
          .join(", ");
        throw new CliError(
          `${bundlePath}: not verified: ${printable(failed)}`,
          ExitCode.invalidInput,
        );
      }
    });
}
