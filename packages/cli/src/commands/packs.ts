import type { Command } from "commander";
import { collectPages } from "../collect-pages.ts";
import { commandHint } from "../command-hint.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { readManifestFile } from "../manifest-file.ts";
import { integerOption } from "../option-values.ts";
import { renderJson, renderTable } from "../output.ts";
import { printable } from "../printable.ts";

interface PageOptions extends GatewayOptions {
  limit: number;
  pageToken?: string;
}

function addPageOptions(command: Command): Command {
  return command
    .option("-n, --limit <n>", "at most this many entries", integerOption(1, 100_000), 100)
    .option("--page-token <token>", "continue a previous listing");
}

/** `packrun packs push|list|versions`: the tenant's pack registry. */
export function registerPacksCommand(program: Command): void {
  const packs = program
    .command("packs")
    .summary("publish and list registered packs")
    .description(
      "The pack registry of your tenant: publish a manifest as a new version, list packs and " +
        "their versions. A published version never changes; runs can name it with --pack.",
    );

  addGatewayOptions(
    packs
      .command("push")
      .alias("publish")
      .summary("publish a manifest as a pack version")
      .description(
        "Publish a pack manifest under its metadata.name and metadata.version. Publishing the " +
          "identical manifest again is a no-op; a different manifest under an existing version " +
          "is refused (exit 1): bump the version.",
      )
      .argument("<manifest>", "pack manifest file (pack.yaml)"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun packs push pack.yaml\n\nJSON output: {pack, created} as POST /api/packs answers.\n",
    )
    .action(async (file: string, options: GatewayOptions) => {
      const manifest = await readManifestFile(file);
      const { client } = await connect(options);
      const answer = await client.publishPack(manifest.text, manifest.name);
      if (options.format === "json") {
        process.stdout.write(renderJson(answer));
        return;
      }
      const { pack } = answer;
      const name = `${printable(pack.name)}@${printable(pack.version)}`;
      process.stdout.write(
        answer.created
          ? `published ${name} (${pack.digest})\n`
          : `already published: ${name} (${pack.digest}, identical manifest)\n`,
      );
    });

  addGatewayOptions(
    addPageOptions(
      packs
        .command("list")
        .alias("ls")
        .summary("list packs")
        .description("List the registered packs with their latest version and version count."),
    ),
  )
    .addHelpText("after", "\nJSON output: {packs, nextPageToken?} as GET /api/packs answers.\n")
    .action(async (options: PageOptions) => {
      const { client } = await connect(options);
      const page = await collectPages(
        async (pageSize, pageToken) => {
          const answer = await client.listPacks({
            pageSize,
            ...(pageToken === undefined ? {} : { pageToken }),
          });
          return { items: answer.packs, nextPageToken: answer.nextPageToken };
        },
        options.limit,
        options.pageToken,
      );
      if (options.format === "json") {
        process.stdout.write(
          renderJson({
            packs: page.items,
            ...(page.nextPageToken === undefined ? {} : { nextPageToken: page.nextPageToken }),
          }),
        );
        return;
      }
      process.stdout.write(
        page.items.length === 0
          ? "No packs.\n"
          : renderTable(
              ["NAME", "LATEST", "VERSIONS"],
              page.items.map((pack) => [
                printable(pack.name),
                printable(pack.latestVersion),
                String(pack.versionCount),
              ]),
            ),
      );
      if (page.nextPageToken !== undefined)
        process.stdout.write(
          `more: ${commandHint(`packs list --page-token ${page.nextPageToken}`)}\n`,
        );
    });

  addGatewayOptions(
    addPageOptions(
      packs
        .command("versions")
        .summary("list the versions of a pack")
        .description("List the published versions of a pack with their digests and publishers.")
        .argument("<name>", "pack name"),
    ),
  )
    .addHelpText(
      "after",
      "\nJSON output: {versions, nextPageToken?} as GET /api/packs/{name}/versions answers.\n",
    )
    .action(async (name: string, options: PageOptions) => {
      const { client } = await connect(options);
      const page = await collectPages(
        async (pageSize, pageToken) => {
          const answer = await client.listPackVersions(name, {
            pageSize,
            ...(pageToken === undefined ? {} : { pageToken }),
          });
          return { items: answer.versions, nextPageToken: answer.nextPageToken };
        },
        options.limit,
        options.pageToken,
      );
      if (options.format === "json") {
        process.stdout.write(
          renderJson({
            versions: page.items,
            ...(page.nextPageToken === undefined ? {} : { nextPageToken: page.nextPageToken }),
          }),
        );
        return;
      }
      process.stdout.write(
        renderTable(
          ["VERSION", "DIGEST", "PUBLISHED", "BY", "DESCRIPTION"],
          page.items.map((version) => [
            printable(version.version),
            version.digest,
            version.publishedAt ?? "",
            printable(version.publishedBy),
            printable(version.description ?? ""),
          ]),
        ),
      );
      if (page.nextPageToken !== undefined)
        process.stdout.write(
          `more: ${commandHint(`packs versions ${printable(name)} --page-token ${page.nextPageToken}`)}\n`,
        );
    });
}
