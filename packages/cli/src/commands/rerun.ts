import type { Command } from "commander";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { collect } from "../option-values.ts";
import { collectSecrets, followStartedRun } from "./run.ts";

interface RerunOptions extends GatewayOptions {
  secret?: string[];
  secretEnv?: string[];
  secretFile?: string[];
  detach?: boolean;
}

const commands = {
  rerun: {
    summary: "run a finished run again: same plan hash and inputs",
    description:
      "Start a new run of a finished run's plan (same plan hash and inputs); every step runs " +
      "again. Secrets are never taken from the original run: give every secret the pack " +
      "declares again. The new run is linked to the original (rerunOf / reruns) in both runs " +
      "and in the new run's attestation. Then follows the new run as `packrun run` does.",
  },
  resume: {
    summary: "resume a failed or cancelled run from its failed steps",
    description:
      "Start a new run of a failed or cancelled run's plan (same plan hash and inputs) that " +
      "keeps the steps that succeeded, with their outputs, and runs the rest (as Argo's retry " +
      "does). Secrets are given again as for rerun. Refused for a run that has not finished " +
      "or that succeeded. Then follows the new run as `packrun run` does.",
  },
} as const;

/** `packrun rerun RUN` and `packrun resume RUN`: a new run from a finished one. */
export function registerRerunCommands(program: Command): void {
  for (const mode of ["rerun", "resume"] as const) {
    addGatewayOptions(
      program
        .command(mode)
        .summary(commands[mode].summary)
        .description(commands[mode].description)
        .argument("<run>", "id of the finished run")
        .option(
          "--secret <NAME=value>",
          "a secret value, repeatable (visible in the process list: prefer --secret-env or --secret-file)",
          collect,
        )
        .option("--secret-env <NAME=ENVVAR>", "a secret read from an environment variable", collect)
        .option(
          "--secret-file <NAME=PATH>",
          "a secret read from a file (one trailing newline dropped), repeatable",
          collect,
        )
        .option("-d, --detach", "start the new run and print its id without following"),
    )
      .addHelpText(
        "after",
        `\nExamples:\n  packrun ${mode} 3f2c... --secret-env registryToken=REG_TOKEN\n` +
          `  packrun ${mode} 3f2c... --detach --format json\n\n` +
          "JSON output: the new run's final state (GET /api/runs/{id}); with --detach {run, created}.\n",
      )
      .action(async (runId: string, options: RerunOptions) => {
        const secrets = await collectSecrets(options);
        const { client } = await connect(options);
        const started = await client.rerunRun(runId, mode, secrets);
        const line = `${mode === "resume" ? "resumed" : "rerun of"} run ${runId} as run ${started.run.id}  plan ${started.run.planHash}\n`;
        await followStartedRun(client, started, line, {
          json: options.format === "json",
          detach: options.detach === true,
        });
      });
  }
}
