import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { bundleFailure, renderBundleReport, verifyBundleBytes } from "../bundle-verification.ts";
import { CliError } from "../cli-error.ts";
import { downloadToFile } from "../download-to-file.ts";
import { ExitCode } from "../exit-codes.ts";
import { formatBytes } from "../format-bytes.ts";
import { apiPath } from "../gateway-client.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { collect } from "../option-values.ts";
import { renderJson } from "../output.ts";
import { printable } from "../printable.ts";
import { readKeyFiles } from "../read-binary-file.ts";

interface BundleOptions extends GatewayOptions {
  output?: string;
  verify: boolean;
  key?: string[];
}

/**
 * `packrun bundle RUN -o FILE`: downloads a finished run's evidence bundle and verifies it
 * offline against the evidence service's published keys (or --key).
 */
export function registerBundleCommand(program: Command): void {
  addGatewayOptions(
    program
      .command("bundle")
      .summary("download (and verify) a run's evidence bundle")
      .description(
        "Download the evidence bundle (.tar.gz) of a finished run, written atomically, then " +
          "verify it offline exactly as `packrun verify` does: against the keys given with " +
          "--key, else the evidence service's published verification keys (GET " +
          "/api/verification-keys). Exit 2 when it does not verify (the file is kept for " +
          "inspection).",
      )
      .argument("<run>", "run id")
      .option(
        "-o, --output <file>",
        "where to write the bundle (default: RUN.tar.gz; - for stdout)",
      )
      .option("--no-verify", "only download, do not verify")
      .option("-k, --key <pem>", "trusted public key (PEM file); repeat for several", collect),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun bundle 3f2c... -o evidence.tar.gz\n" +
        "  packrun bundle 3f2c... -o evidence.tar.gz --key evidence-signing.pub.pem\n\n" +
        "JSON output: {runId, file, bytes, digest, verification?} where verification is the\n" +
        "report `packrun verify --format json` prints.\n",
    )
    .action(async (runId: string, options: BundleOptions) => {
      const target = options.output ?? `${runId}.tar.gz`;
      if (target === "-" && options.verify)
        throw new CliError(
          "-o - writes to stdout, where the bundle cannot be verified: add --no-verify or name a file",
          ExitCode.invalidInput,
        );
      const keys = await readKeyFiles(options.key ?? []);
      const { client } = await connect(options);
      const response = await client.request("GET", apiPath("api", "runs", runId, "bundle"), {
        headers: { accept: "application/gzip" },
        timeoutMs: null,
      });
      const download = await downloadToFile(response, target);
      const json = options.format === "json";
      const say = (text: string) =>
        target === "-" ? process.stderr.write(text) : process.stdout.write(text);
      if (!options.verify) {
        say(
          json
            ? renderJson({ runId, file: target, bytes: download.bytes, digest: download.digest })
            : `downloaded the evidence bundle of run ${runId} (${formatBytes(download.bytes)}, ${download.digest}) to ${target === "-" ? "stdout" : printable(target)}\n`,
        );
        return;
      }
      const trusted =
        keys.length > 0
          ? keys
          : (await client.verificationKeys()).keys.map((key) => key.publicKeyPem);
      const report = await verifyBundleBytes(await readFile(target), trusted, target);
      if (json) {
        say(
          renderJson({
            runId,
            file: target,
            bytes: download.bytes,
            digest: download.digest,
            verification: report,
          }),
        );
      } else {
        say(
          `downloaded the evidence bundle of run ${runId} (${formatBytes(download.bytes)}, ${download.digest}) to ${printable(target)}\n${renderBundleReport(report)}`,
        );
      }
      const failure = bundleFailure(report, target);
      if (failure !== undefined) throw failure;
    });
}
