import type { Command } from "commander";
import type { DeadLetter } from "../api-types.ts";
import { CliError } from "../cli-error.ts";
import { collectPages } from "../collect-pages.ts";
import { commandHint } from "../command-hint.ts";
import { ExitCode } from "../exit-codes.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { collect, integerOption } from "../option-values.ts";
import { renderJson, renderTable } from "../output.ts";
import { printable } from "../printable.ts";
import { collectSecrets } from "./run.ts";

interface ListOptions extends GatewayOptions {
  all?: boolean;
  run?: string;
  limit: number;
  pageToken?: string;
}

interface RetryOptions extends GatewayOptions {
  all?: boolean;
  secret?: string[];
  secretEnv?: string[];
  secretFile?: string[];
}

function lastResult(letter: DeadLetter): string {
  const last = letter.lastAttempt;
  if (last === undefined) return "no attempt";
  return last.exitCode === undefined ? last.state : `exit ${last.exitCode}`;
}

/** `packrun dead-letters list|retry`: steps that failed permanently, and their re-drive. */
export function registerDeadLettersCommand(program: Command): void {
  const deadLetters = program
    .command("dead-letters")
    .summary("list or re-drive steps that failed permanently")
    .description(
      "Dead letters are steps of your tenant's runs that failed permanently (every attempt " +
        "used). List them with the reason and the last attempt's result, or re-drive them: " +
        "each run is resumed as a new run that keeps what succeeded and runs the dead-lettered " +
        "steps again, recorded in that run's evidence.",
    );

  addGatewayOptions(
    deadLetters
      .command("list")
      .alias("ls")
      .summary("list dead letters")
      .description("List the open dead letters, newest first (--all: re-driven ones too).")
      .option("--all", "also dead letters already re-driven")
      .option("--run <run>", "only this run's")
      .option("-n, --limit <n>", "at most this many", integerOption(1, 100_000), 50)
      .option("--page-token <token>", "continue a previous listing"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun dead-letters list\n  packrun dead-letters list --all --format json\n\n" +
        "JSON output: {deadLetters, nextPageToken?} as GET /api/dead-letters answers.\n",
    )
    .action(async (options: ListOptions) => {
      const { client } = await connect(options);
      const page = await collectPages(
        async (pageSize, pageToken) => {
          const answer = await client.listDeadLetters({
            includeRetried: options.all === true,
            ...(options.run === undefined ? {} : { runId: options.run }),
            pageSize,
            ...(pageToken === undefined ? {} : { pageToken }),
          });
          return { items: answer.deadLetters, nextPageToken: answer.nextPageToken };
        },
        options.limit,
        options.pageToken,
      );
      if (options.format === "json") {
        process.stdout.write(
          renderJson({
            deadLetters: page.items,
            ...(page.nextPageToken === undefined ? {} : { nextPageToken: page.nextPageToken }),
          }),
        );
        return;
      }
      if (page.items.length === 0) process.stdout.write("No dead letters.\n");
      else
        process.stdout.write(
          renderTable(
            ["ID", "RUN", "STEP", "ATTEMPT", "LAST", "CREATED", "RETRIED BY RUN", "REASON"],
            page.items.map((letter) => [
              letter.id,
              letter.runId,
              printable(letter.stepId),
              String(letter.attempt),
              lastResult(letter),
              letter.createdAt,
              letter.retryRunId ?? "",
              printable(letter.reason),
            ]),
          ),
        );
      if (page.nextPageToken !== undefined)
        process.stdout.write(
          `more: ${commandHint(`dead-letters list --page-token ${page.nextPageToken}`)}\n`,
        );
    });

  addGatewayOptions(
    deadLetters
      .command("retry")
      .summary("re-drive one dead letter, or all")
      .description(
        "Re-drive a dead letter (or every open one with --all): its run is resumed as a new " +
          "run (same plan hash and inputs) that keeps the steps that succeeded and runs the " +
          "dead-lettered ones again. Give the pack's secrets again. With --all, what could " +
          "not be re-driven is listed and the exit code is 1.",
      )
      .argument("[id]", "dead letter id (from `packrun dead-letters list`)")
      .option("--all", "every open dead letter of your tenant")
      .option("--secret <NAME=value>", "a secret value, repeatable", collect)
      .option("--secret-env <NAME=ENVVAR>", "a secret read from an environment variable", collect)
      .option(
        "--secret-file <NAME=PATH>",
        "a secret read from a file (one trailing newline dropped), repeatable",
        collect,
      ),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun dead-letters retry 0aed4b0e-... --secret-env token=TOKEN\n" +
        "  packrun dead-letters retry --all\n\n" +
        "JSON output: {deadLetterId, runId, retryRunId}; with --all {retried, refused}.\n",
    )
    .action(async (id: string | undefined, options: RetryOptions) => {
      if ((id === undefined) === (options.all !== true))
        throw new CliError("name one dead letter id, or give --all", ExitCode.invalidInput);
      const secrets = await collectSecrets(options);
      const { client } = await connect(options);
      const json = options.format === "json";
      if (id !== undefined) {
        const retried = await client.retryDeadLetter(id, secrets);
        process.stdout.write(
          json
            ? renderJson(retried)
            : `re-drove dead letter ${retried.deadLetterId} of run ${retried.runId} as run ${retried.retryRunId}\nfollow: ${commandHint(`logs ${retried.retryRunId} -f`)}\n`,
        );
        return;
      }
      const result = await client.retryAllDeadLetters(secrets);
      if (json) process.stdout.write(renderJson(result));
      else {
        for (const each of result.retried)
          process.stdout.write(
            `re-drove dead letter ${each.deadLetterId} of run ${each.runId} as run ${each.retryRunId}\n`,
          );
        for (const each of result.refused)
          process.stdout.write(
            `not re-driven: dead letter ${each.deadLetterId}: ${each.code}: ${printable(each.message)}\n`,
          );
        if (result.retried.length === 0 && result.refused.length === 0)
          process.stdout.write("No open dead letters.\n");
      }
      if (result.refused.length > 0)
        throw new CliError(`${result.refused.length} dead letter(s) not re-driven`, ExitCode.error);
    });
}
