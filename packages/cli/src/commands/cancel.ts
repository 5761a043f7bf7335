import type { Command } from "commander";
import { CliError } from "../cli-error.ts";
import { ExitCode } from "../exit-codes.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { renderJson } from "../output.ts";
import { printable } from "../printable.ts";

interface CancelOptions extends GatewayOptions {
  reason?: string;
}

/** `packrun cancel RUN`: cancels a run; its running steps are stopped, nothing new starts. */
export function registerCancelCommand(program: Command): void {
  addGatewayOptions(
    program
      .command("cancel")
      .summary("cancel a run")
      .description(
        "Cancel a run: pending steps never start and running ones get SIGTERM, then SIGKILL " +
          "after their grace period. A run that had already succeeded or failed is not " +
          "cancelled (exit 1); cancelling a cancelled run again is fine.",
      )
      .argument("<run>", "run id")
      .option("-r, --reason <text>", "why, recorded with the run"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun cancel 3f2c... --reason 'wrong inputs'\n\n" +
        "JSON output: the run as POST /api/runs/{id}/cancel answers.\n",
    )
    .action(async (runId: string, options: CancelOptions) => {
      const { client } = await connect(options);
      const run = await client.cancelRun(runId, options.reason);
      const finished = run.state === "succeeded" || run.state === "failed";
      if (options.format === "json") process.stdout.write(renderJson(run));
      else if (!finished) {
        const reason = run.reason === undefined ? "" : `: ${printable(run.reason)}`;
        process.stdout.write(
          run.state === "cancelled"
            ? `cancelled run ${run.id}${reason}\n`
            : `cancellation requested for run ${run.id} (now ${run.state})\n`,
        );
      }
      if (finished) {
        throw new CliError(
          `run ${run.id} had already finished (${run.state}); nothing was cancelled`,
          ExitCode.error,
        );
      }
    });
}
