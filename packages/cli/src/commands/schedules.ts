import { type Command, InvalidArgumentError } from "commander";
import { collectPages } from "../collect-pages.ts";
import { commandHint } from "../command-hint.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { collect, integerOption, splitAssignment } from "../option-values.ts";
import { renderJson, renderTable } from "../output.ts";
import { parsePackReference } from "../pack-reference.ts";
import { printable } from "../printable.ts";
import { readInputs } from "../read-inputs.ts";
import {
  type CreateScheduleRequest,
  createSchedule,
  deleteSchedule,
  getSchedule,
  listSchedules,
  type Schedule,
  setSchedulePaused,
} from "../schedules-client.ts";
import { durationOption } from "../time-options.ts";

interface CreateOptions extends GatewayOptions {
  pack: string;
  cron: string;
  tz?: string;
  inputs?: string;
  input?: string[];
  missed?: "skip" | "runOnce";
  overlap?: "allow" | "skip" | "queue";
  timeout?: number;
  priority?: number;
  label?: string[];
  paused?: boolean;
}

interface ListOptions extends GatewayOptions {
  limit: number;
  pageToken?: string;
}

function choice<T extends string>(allowed: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(allowed as readonly string[]).includes(value))
      throw new InvalidArgumentError(`allowed choices are ${allowed.join(", ")}.`);
    return value as T;
  };
}

/** The lines `schedules show` prints. */
function describeSchedule(schedule: Schedule): string {
  const rows: [string, string | undefined][] = [
    ["id", schedule.id],
    ["name", schedule.name],
    ["pack", `${schedule.pack.name}@${schedule.pack.version}`],
    ["cron", `${schedule.cron} (${schedule.timeZone})`],
    ["state", schedule.paused ? "paused" : "active"],
    ["next due", schedule.nextDueAt],
    ["last due", schedule.lastDueAt],
    ["last run", schedule.lastRunId],
    ["last error", schedule.lastError],
    ["missed", schedule.missedPolicy],
    ["overlap", schedule.overlapPolicy],
    ["timeout", schedule.timeoutSeconds === undefined ? undefined : `${schedule.timeoutSeconds}s`],
    ["runs as", schedule.createdBy],
    ["inputs", JSON.stringify(schedule.inputs)],
  ];
  return rows
    .filter(([, value]) => value !== undefined && value !== "")
    .map(([key, value]) => `${`${key}:`.padEnd(12)}${printable(value ?? "")}\n`)
    .join("");
}

/** `packrun schedules create|list|show|pause|resume|delete`. */
export function registerSchedulesCommand(program: Command): void {
  const schedules = program
    .command("schedules")
    .alias("schedule")
    .summary("run registered packs on a cron expression")
    .description(
      "Schedules run a registered pack version (or its latest, resolved at each due time) with " +
        "fixed inputs on a cron expression in a time zone, as the user who created them. Exactly " +
        "one run per due time, however many executors run.",
    );

  addGatewayOptions(
    schedules
      .command("create")
      .summary("create a schedule")
      .argument("<name>", "unique name in your tenant (lower-case letters, digits, . _ -)")
      .requiredOption("-p, --pack <name[@version]>", "a registered pack (default: latest)")
      .requiredOption(
        "--cron <expression>",
        "5 fields, or 6 with seconds first; @hourly, @daily, ... (quote it)",
      )
      .option("--tz <zone>", "IANA time zone of the cron expression (default UTC)")
      .option("-i, --inputs <file>", "JSON file holding an object of input values")
      .option("--input <name=value>", "one input value, repeatable", collect)
      .option(
        "--missed <policy>",
        "due times missed while down: skip (default) or runOnce",
        choice(["skip", "runOnce"] as const),
      )
      .option(
        "--overlap <policy>",
        "a due time while the previous run is in flight: allow (default), skip or queue",
        choice(["allow", "skip", "queue"] as const),
      )
      .option("--timeout <duration>", "run deadline of each run, e.g. 30m", durationOption)
      .option("--priority <n>", "queue priority, -1000 to 1000", integerOption(-1000, 1000))
      .option("--label <key=value>", "a label on each run, repeatable", collect)
      .option("--paused", "create it paused"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  packrun schedules create nightly --pack image-scan --cron '0 2 * * *' --tz Europe/Berlin --input image=nginx:1.27\n" +
        "  packrun schedules create poll --pack probe@1.0.0 --cron '*/30 * * * * *' --overlap skip\n\n" +
        "JSON output: the schedule as POST /api/schedules answers.\n",
    )
    .action(async (name: string, options: CreateOptions) => {
      const inputs = await readInputs({
        inputsFile: options.inputs,
        assignments: options.input ?? [],
      });
      const pack = parsePackReference(options.pack);
      const body: CreateScheduleRequest = {
        name,
        pack: { name: pack.name, version: pack.version ?? "latest" },
        cron: options.cron,
        inputs: inputs.values,
        ...(options.tz === undefined ? {} : { timeZone: options.tz }),
        ...(options.missed === undefined ? {} : { missedPolicy: options.missed }),
        ...(options.overlap === undefined ? {} : { overlapPolicy: options.overlap }),
        ...(options.timeout === undefined ? {} : { timeoutSeconds: options.timeout }),
        ...(options.priority === undefined ? {} : { priority: options.priority }),
        ...(options.paused === true ? { paused: true } : {}),
        ...(options.label === undefined
          ? {}
          : {
              labels: Object.fromEntries(
                options.label.map((label) => splitAssignment("--label", label)),
              ),
            }),
      };
      const { client } = await connect(options);
      const schedule = await createSchedule(client, body);
      process.stdout.write(
        options.format === "json"
          ? renderJson(schedule)
          : `created schedule ${printable(schedule.name)} (${schedule.id}); next run ${schedule.nextDueAt ?? "when resumed"}\n`,
      );
    });

  addGatewayOptions(
    schedules
      .command("list")
      .alias("ls")
      .summary("list schedules")
      .option("-n, --limit <n>", "at most this many entries", integerOption(1, 100_000), 100)
      .option("--page-token <token>", "continue a previous listing"),
  )
    .addHelpText(
      "after",
      "\nJSON output: {schedules, nextPageToken?} as GET /api/schedules answers.\n",
    )
    .action(async (options: ListOptions) => {
      const { client } = await connect(options);
      const page = await collectPages(
        async (pageSize, pageToken) => {
          const answer = await listSchedules(client, {
            pageSize,
            ...(pageToken === undefined ? {} : { pageToken }),
          });
          return { items: answer.schedules, nextPageToken: answer.nextPageToken };
        },
        options.limit,
        options.pageToken,
      );
      if (options.format === "json") {
        process.stdout.write(
          renderJson({
            schedules: page.items,
            ...(page.nextPageToken === undefined ? {} : { nextPageToken: page.nextPageToken }),
          }),
        );
        return;
      }
      process.stdout.write(
        page.items.length === 0
          ? "No schedules.\n"
          : renderTable(
              ["NAME", "PACK", "CRON", "TZ", "STATE", "NEXT DUE"],
              page.items.map((schedule) => [
                printable(schedule.name),
                printable(`${schedule.pack.name}@${schedule.pack.version}`),
                printable(schedule.cron),
                printable(schedule.timeZone),
                schedule.paused ? "paused" : "active",
                schedule.nextDueAt ?? "-",
              ]),
            ),
      );
      if (page.nextPageToken !== undefined)
        process.stdout.write(
          `more: ${commandHint(`schedules list --page-token ${page.nextPageToken}`)}\n`,
        );
    });

  addGatewayOptions(
    schedules
      .command("show")
      .summary("show a schedule")
      .argument("<schedule>", "schedule name or id"),
  )
    .addHelpText("after", "\nJSON output: the schedule as GET /api/schedules/{schedule} answers.\n")
    .action(async (name: string, options: GatewayOptions) => {
      const { client } = await connect(options);
      const schedule = await getSchedule(client, name);
      process.stdout.write(
        options.format === "json" ? renderJson(schedule) : describeSchedule(schedule),
      );
    });

  for (const action of ["pause", "resume"] as const) {
    addGatewayOptions(
      schedules
        .command(action)
        .summary(
          action === "pause"
            ? "pause a schedule (no runs until resumed)"
            : "resume a schedule from its next due time after now",
        )
        .argument("<schedule>", "schedule name or id"),
    ).action(async (name: string, options: GatewayOptions) => {
      const { client } = await connect(options);
      const schedule = await setSchedulePaused(client, name, action === "pause");
      process.stdout.write(
        options.format === "json"
          ? renderJson(schedule)
          : action === "pause"
            ? `paused schedule ${printable(schedule.name)}\n`
            : `resumed schedule ${printable(schedule.name)}; next run ${schedule.nextDueAt ?? "-"}\n`,
      );
    });
  }

  addGatewayOptions(
    schedules
      .command("delete")
      .alias("rm")
      .summary("delete a schedule (its runs stay)")
      .argument("<schedule>", "schedule name or id"),
  ).action(async (name: string, options: GatewayOptions) => {
    const { client } = await connect(options);
    await deleteSchedule(client, name);
    process.stdout.write(
      options.format === "json"
        ? renderJson({ deleted: name })
        : `deleted schedule ${printable(name)}\n`,
    );
  });
}
