import { type Command, InvalidArgumentError, Option } from "commander";
import { type RunState, runStates } from "../api-types.ts";
import { collectPages } from "../collect-pages.ts";
import { commandHint } from "../command-hint.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { collect, integerOption } from "../option-values.ts";
import { renderJson, renderTable } from "../output.ts";
import { renderRunDetails, runListRows } from "../run-details.ts";

interface ListOptions extends GatewayOptions {
  state?: RunState[];
  pack?: string;
  limit: number;
  pageToken?: string;
}

/** `packrun runs list|show`: the tenant's runs, newest first, and one run in full. */
export function registerRunsCommand(program: Command): void {
  const runs = program
    .command("runs")
    .summary("list runs or show one")
    .description("List the runs of your tenant (newest first) or show one with its step graph.");

  addGatewayOptions(
    runs
      .command("list")
      .alias("ls")
      .summary("list runs")
      .description(
        "List runs, newest first, optionally only some states or one pack. Pages through the " +
          "gateway's results up to --limit; when more remain, the token to continue with is " +
          "printed (--page-token).",
      )
      .addOption(
        new Option("--state <state>", "only runs in this state; repeat for several")
          .choices(runStates)
          .argParser((value: string, previous: string[] | undefined) => {
            if (!(runStates as readonly string[]).includes(value))
              throw new InvalidArgumentError(`allowed choices are ${runStates.join(", ")}.`);
            return collect(value, previous);
          }),
      )
      .option("--pack <name>", "only runs of this pack")
      .option("-n, --limit <n>", "at most this many runs", integerOption(1, 100_000), 50)
      .option("--page-token <token>", "continue a previous listing"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun runs list --state running --state awaiting-approval\n" +
        "  packrun runs list --pack image-scan --limit 200 --format json\n\n" +
        "JSON output: {runs, nextPageToken?} as GET /api/runs answers.\n",
    )
    .action(async (options: ListOptions) => {
      const { client } = await connect(options);
      const page = await collectPages(
        async (pageSize, pageToken) => {
          const answer = await client.listRuns({
            ...(options.state === undefined ? {} : { state: options.state }),
            ...(options.pack === undefined ? {} : { pack: options.pack }),
            pageSize,
            ...(pageToken === undefined ? {} : { pageToken }),
          });
          return { items: answer.runs, nextPageToken: answer.nextPageToken };
        },
        options.limit,
        options.pageToken,
      );
      if (options.format === "json") {
        process.stdout.write(
          renderJson({
            runs: page.items,
            ...(page.nextPageToken === undefined ? {} : { nextPageToken: page.nextPageToken }),
          }),
        );
        return;
      }
      if (page.items.length === 0) process.stdout.write("No runs.\n");
      else
        process.stdout.write(
          renderTable(
            ["ID", "PACK", "STATE", "CREATED", "TIME", "LABELS"],
            runListRows(page.items, Date.now()),
          ),
        );
      if (page.nextPageToken !== undefined)
        process.stdout.write(
          `more: ${commandHint(`runs list --page-token ${page.nextPageToken}`)}\n`,
        );
    });

  addGatewayOptions(
    runs
      .command("show")
      .alias("get")
      .summary("show one run")
      .description(
        "Show a run: its state and reason, plan hash, every step with its state, attempt and " +
          "duration, the gates with their decisions, and the outputs.",
      )
      .argument("<run>", "run id"),
  )
    .addHelpText("after", "\nJSON output: the run as GET /api/runs/{id} answers.\n")
    .action(async (runId: string, options: GatewayOptions) => {
      const { client } = await connect(options);
      const run = await client.getRun(runId);
      process.stdout.write(
        options.format === "json" ? renderJson(run) : renderRunDetails(run, Date.now()),
      );
    });
}
