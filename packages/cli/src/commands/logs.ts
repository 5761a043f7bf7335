import type { Command } from "commander";
import { EventLineFormatter } from "../event-line.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { integerOption } from "../option-values.ts";
import { streamRunEvents } from "../run-event-stream.ts";

interface LogsOptions extends GatewayOptions {
  follow?: boolean;
  step?: string;
  after?: number;
}

/**
 * `packrun logs RUN [-f]`: prints a run's event log in order. With -f it keeps streaming until
 * the run finishes, reconnecting after a dropped connection without repeating or losing a
 * line.
 */
export function registerLogsCommand(program: Command): void {
  addGatewayOptions(
    program
      .command("logs")
      .summary("print a run's logs and events")
      .description(
        "Print a run's event log (step output, state changes, gates, artifacts) in sequence " +
          "order. -f follows it live until the run finishes; a dropped connection is resumed " +
          "from the last event printed (Last-Event-ID), so no line is lost or printed twice.",
      )
      .argument("<run>", "run id")
      .option("-f, --follow", "keep streaming until the run finishes")
      .option("--step <id>", "only this step's events")
      .option(
        "--after <sequence>",
        "start after this event sequence (e.g. the last one you saw)",
        integerOption(0, Number.MAX_SAFE_INTEGER),
      ),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun logs 3f2c... -f\n  packrun logs 3f2c... --step build --format json\n\n" +
        "JSON output: one RunEvent per line (NDJSON): {sequence, time, level, type, stepId?, message, metadata?}.\n",
    )
    .action(async (runId: string, options: LogsOptions) => {
      const { client } = await connect(options);
      const formatter = new EventLineFormatter();
      const json = options.format === "json";
      await streamRunEvents(client, {
        runId,
        follow: options.follow === true,
        after: options.after,
        step: options.step,
        onEvent: (event) => {
          process.stdout.write(`${json ? JSON.stringify(event) : formatter.format(event)}\n`);
        },
        onReconnect: ({ delayMs, reason }) => {
          process.stderr.write(
            `packrun: log stream interrupted (${reason}); reconnecting in ${delayMs} ms\n`,
          );
        },
      });
    });
}
