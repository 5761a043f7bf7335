import path from "node:path";
import type { Command } from "commander";
import type { Artifact } from "../api-types.ts";
import { CliError } from "../cli-error.ts";
import { downloadToFile } from "../download-to-file.ts";
import { ExitCode } from "../exit-codes.ts";
import { formatBytes } from "../format-bytes.ts";
import { apiPath } from "../gateway-client.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { renderJson, renderTable } from "../output.ts";
import { printable } from "../printable.ts";

interface ArtifactsOptions extends GatewayOptions {
  download?: string;
  output?: string;
}

/**
 * The artifact `wanted` names: its digest (`sha256:<hex>` or a unique hex prefix), its name,
 * or `step/name`.
 * @throws CliError: exit 4 when none matches, 2 when several do
 */
export function selectArtifact(artifacts: readonly Artifact[], wanted: string): Artifact {
  const hex = wanted.startsWith("sha256:") ? wanted.slice(7) : wanted;
  const byDigest = /^[0-9a-f]{6,64}$/.test(hex)
    ? artifacts.filter((artifact) => artifact.digest.startsWith(`sha256:${hex}`))
    : [];
  const byName = artifacts.filter(
    (artifact) => artifact.name === wanted || `${artifact.stepId}/${artifact.name}` === wanted,
  );
  const matches = [...new Set([...byName, ...byDigest])];
  const distinct = new Set(matches.map((artifact) => artifact.digest));
  const [first] = matches;
  if (first !== undefined && distinct.size === 1) return first;
  if (first === undefined) {
    throw new CliError(
      `no artifact ${printable(wanted)} (give a digest, a name or step/name; \`packrun artifacts RUN\` lists them)`,
      ExitCode.notFound,
    );
  }
  throw new CliError(
    `${printable(wanted)} matches several artifacts: ${matches
      .map(
        (artifact) =>
          `${printable(artifact.stepId)}/${printable(artifact.name)} ${artifact.digest}`,
      )
      .join(", ")}`,
    ExitCode.invalidInput,
  );
}

/** The default file name of a downloaded artifact: the last segment of its name. */
export function defaultArtifactFile(artifact: Artifact): string {
  const base = path.basename(artifact.name.replaceAll("\\", "/"));
  return base === "" || base === "." || base === ".." ? artifact.digest.replace(":", "-") : base;
}

/** `packrun artifacts RUN [--download X -o FILE]`: lists or downloads a run's artifacts. */
export function registerArtifactsCommand(program: Command): void {
  addGatewayOptions(
    program
      .command("artifacts")
      .summary("list or download a run's artifacts")
      .description(
        "List the artifacts a run's steps produced (name, type, size, SHA-256 digest), or " +
          "download one: the file is written atomically and only kept when its content matches " +
          "the digest.",
      )
      .argument("<run>", "run id")
      .option("-d, --download <artifact>", "download this artifact: its digest, name or step/name")
      .option(
        "-o, --output <file>",
        "where to write the download (default: the artifact's name; - for stdout)",
      ),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun artifacts 3f2c...\n" +
        "  packrun artifacts 3f2c... --download report.json -o report.json\n" +
        "  packrun artifacts 3f2c... --download sha256:9f86d0 -o - | jq .\n\n" +
        "JSON output: {artifacts} as GET /api/runs/{id}/artifacts answers; with --download the\n" +
        "artifact's record plus {file, bytes}.\n",
    )
    .action(async (runId: string, options: ArtifactsOptions) => {
      const { client } = await connect(options);
      const { artifacts } = await client.listArtifacts(runId);
      const json = options.format === "json";
      if (options.download === undefined) {
        if (options.output !== undefined)
          throw new CliError("--output needs --download ARTIFACT", ExitCode.invalidInput);
        if (json) process.stdout.write(renderJson({ artifacts }));
        else if (artifacts.length === 0) process.stdout.write(`Run ${runId} has no artifacts.\n`);
        else
          process.stdout.write(
            renderTable(
              ["STEP", "NAME", "TYPE", "SIZE", "DIGEST"],
              artifacts.map((artifact) => [
                printable(artifact.stepId),
                printable(artifact.name),
                printable(artifact.type),
                formatBytes(artifact.sizeBytes),
                artifact.digest,
              ]),
            ),
          );
        return;
      }
      const artifact = selectArtifact(artifacts, options.download);
      const target = options.output ?? defaultArtifactFile(artifact);
      const response = await client.request(
        "GET",
        apiPath("api", "runs", runId, "artifacts", artifact.digest),
        { timeoutMs: null },
      );
      const download = await downloadToFile(response, target, { expectedDigest: artifact.digest });
      const report = json
        ? renderJson({ ...artifact, file: target, bytes: download.bytes })
        : `downloaded ${printable(artifact.stepId)}/${printable(artifact.name)} (${formatBytes(download.bytes)}, ${download.digest}) to ${target === "-" ? "stdout" : printable(target)}\n`;
      if (target === "-") process.stderr.write(report);
      else process.stdout.write(report);
    });
}
