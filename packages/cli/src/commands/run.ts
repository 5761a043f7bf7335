import type { Command } from "commander";
import type { Run, SubmitRunRequest, SubmitRunResponse } from "../api-types.ts";
import { CliError } from "../cli-error.ts";
import { commandHint } from "../command-hint.ts";
import { ExitCode } from "../exit-codes.ts";
import { followRun } from "../follow-run.ts";
import type { GatewayClient } from "../gateway-client.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { readManifestFile } from "../manifest-file.ts";
import { collect, integerOption, splitAssignment } from "../option-values.ts";
import { renderJson } from "../output.ts";
import { parsePackReference } from "../pack-reference.ts";
import { printable } from "../printable.ts";
import { ProgressView } from "../progress-view.ts";
import { readInputs } from "../read-inputs.ts";
import { readTextFile } from "../read-text-file.ts";
import { resultLines } from "../run-progress.ts";
import { durationOption, timeOption } from "../time-options.ts";

interface RunOptions extends GatewayOptions {
  manifest?: string;
  pack?: string;
  inputs?: string;
  input?: string[];
  secret?: string[];
  secretEnv?: string[];
  secretFile?: string[];
  label?: string[];
  priority?: number;
  idempotencyKey?: string;
  notBefore?: string;
  timeout?: number;
  detach?: boolean;
}

/** Largest secret file `--secret-file` reads (a kubeconfig or a key fits easily). */
const maxSecretFileBytes = 1024 * 1024;

/**
 * Secret values from `--secret NAME=value`, `--secret-env NAME=ENVVAR` and
 * `--secret-file NAME=PATH` (in that order; a later one for the same name wins). A file's
 * single trailing newline is dropped (editors and `echo` add one); anything else is kept.
 */
export async function collectSecrets(
  options: {
    secret?: readonly string[];
    secretEnv?: readonly string[];
    secretFile?: readonly string[];
  },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<string, string> | undefined> {
  const secrets = new Map<string, string>();
  for (const assignment of options.secret ?? []) {
    const [name, value] = splitAssignment("--secret", assignment);
    secrets.set(name, value);
  }
  for (const assignment of options.secretEnv ?? []) {
    const [name, variable] = splitAssignment("--secret-env", assignment);
    const value = env[variable];
    if (value === undefined) {
      throw new CliError(
        `--secret-env ${name}=${variable}: the environment variable ${variable} is not set`,
        ExitCode.invalidInput,
      );
    }
    secrets.set(name, value);
  }
  for (const assignment of options.secretFile ?? []) {
    const [name, file] = splitAssignment("--secret-file", assignment);
    const text = await readTextFile(file, `the secret file of ${name},`, maxSecretFileBytes);
    secrets.set(name, text.replace(/\r?\n$/, ""));
  }
  return secrets.size === 0 ? undefined : Object.fromEntries(secrets);
}

/** The body of POST /api/runs from the options, and the name errors about it refer to. */
async function submission(
  positional: string | undefined,
  options: RunOptions,
): Promise<{ body: SubmitRunRequest; source: string }> {
  const file = options.manifest ?? positional;
  if (positional !== undefined && options.manifest !== undefined && positional !== options.manifest)
    throw new CliError(
      `two manifests given (${positional} and --manifest ${options.manifest}); give one`,
      ExitCode.invalidInput,
    );
  if ((file === undefined) === (options.pack === undefined)) {
    throw new CliError(
      "give either a manifest file or --pack NAME[@VERSION] (exactly one)",
      ExitCode.invalidInput,
    );
  }
  const body: SubmitRunRequest = {};
  let source: string;
  if (file !== undefined) {
    const manifest = await readManifestFile(file);
    body.manifest = manifest.text;
    source = manifest.name;
  } else {
    body.pack = parsePackReference(options.pack ?? "");
    source = `--pack ${options.pack ?? ""}`;
  }
  const inputs = await readInputs({ inputsFile: options.inputs, assignments: options.input ?? [] });
  if (Object.keys(inputs.values).length > 0) body.inputs = inputs.values;
  const secrets = await collectSecrets(options);
  if (secrets !== undefined) body.secrets = secrets;
  if (options.label !== undefined) {
    body.labels = Object.fromEntries(
      options.label.map((label) => splitAssignment("--label", label)),
    );
  }
  if (options.priority !== undefined) body.priority = options.priority;
  if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
  if (options.notBefore !== undefined) body.notBefore = options.notBefore;
  if (options.timeout !== undefined) body.timeoutSeconds = options.timeout;
  return { body, source };
}

/**
 * What `run`, `rerun` and `resume` do once the gateway started a run: with `detach`, print it
 * (`started` as JSON, or `line` and how to follow it); otherwise follow it to its end with the
 * progress view, print the final run, and throw its outcome when it did not succeed.
 */
export async function followStartedRun(
  client: GatewayClient,
  started: { run: Run },
  line: string,
  options: { json: boolean; detach: boolean },
): Promise<void> {
  const { json } = options;
  if (options.detach) {
    process.stdout.write(
      json ? renderJson(started) : `${line}follow: ${commandHint(`logs ${started.run.id} -f`)}\n`,
    );
    return;
  }
  const view = json ? undefined : new ProgressView(process.stdout);
  if (!json) process.stdout.write(line);
  const run = await followRun(client, started.run.id, {
    onUpdate: (snapshot) => view?.update(snapshot),
    ...(view?.interactive === true ? { onTick: () => view.redraw() } : {}),
  });
  if (json) process.stdout.write(renderJson(run));
  else {
    const lines = resultLines(run, Date.now());
    if (lines.length > 0) process.stdout.write(`${lines.join("\n")}\n`);
  }
  const failure = runOutcome(run);
  if (failure !== undefined) throw failure;
}

/** Exit status of a finished run: nothing for success, a CliError (exit 1) otherwise. */
export function runOutcome(run: Run): CliError | undefined {
  if (run.state === "succeeded") return undefined;
  return new CliError(
    `run ${run.id} ${run.state}${run.reason === undefined ? "" : `: ${run.reason}`}`,
    ExitCode.error,
  );
}

function submittedLine(response: SubmitRunResponse): string {
  const { run } = response;
  const what = response.created ? "submitted" : "already submitted (same idempotency key):";
  const waiting =
    run.state === "queued" && run.waitingReason !== undefined
      ? `  (${printable(run.waitingReason)})`
      : "";
  return `${what} run ${run.id}  ${printable(run.pack.name)}@${printable(run.pack.version)}  plan ${run.planHash}${waiting}\n`;
}

/**
 * `packrun run`: submits a run (inline manifest or registered pack) and follows it with a live
 * per-step view until it finishes; exits 0 when it succeeded, 1 when it failed or was cancelled.
 */
export function registerRunCommand(program: Command): void {
  addGatewayOptions(
    program
      .command("run")
      .summary("submit a run and follow it to the end")
      .description(
        "Submit a run of a pack, given as a manifest file (sent inline) or as a registered pack " +
          "(--pack NAME[@VERSION], default the latest version), and follow it: one line per " +
          "step with its state, attempt and duration, redrawn in place on a terminal and " +
          "appended as state changes otherwise. Pending approval gates are shown with the " +
          "`packrun approve` command to run. Exits with the run's result: 0 succeeded, 1 " +
          "failed or cancelled. --detach only submits.",
      )
      .argument("[manifest]", "pack manifest file to run inline (or use --pack)")
      .option("-m, --manifest <file>", "pack manifest file (same as the argument)")
      .option("-p, --pack <name[@version]>", "a registered pack (default: its latest version)")
      .option("-i, --inputs <file>", "JSON file holding an object of input values")
      .option(
        "--input <name=value>",
        "one input value, repeatable; parsed as JSON when valid JSON, else a string; overrides --inputs",
        collect,
      )
      .option(
        "--secret <NAME=value>",
        "a secret value, repeatable (visible in the process list and shell history: prefer --secret-env or --secret-file)",
        collect,
      )
      .option("--secret-env <NAME=ENVVAR>", "a secret read from an environment variable", collect)
      .option(
        "--secret-file <NAME=PATH>",
        "a secret read from a file (one trailing newline dropped), repeatable",
        collect,
      )
      .option("--label <key=value>", "a label on the run, repeatable", collect)
      .option(
        "--priority <n>",
        "queue priority, -1000 to 1000 (default 0)",
        integerOption(-1000, 1000),
      )
      .option("--idempotency-key <key>", "submitting twice with the same key gives the same run")
      .option(
        "--not-before <time>",
        "a delayed run: it waits, queued, until this RFC 3339 time or +DURATION (e.g. +10m)",
        timeOption,
      )
      .option(
        "--timeout <duration>",
        "run deadline, e.g. 30m; may only shorten the pack's spec.timeout",
        durationOption,
      )
      .option("-d, --detach", "submit and print the run id without following"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun run pack.yaml --input image=nginx:1.27\n" +
        "  packrun run --pack image-scan@1.2.0 --inputs inputs.json --secret-env registryToken=REG_TOKEN\n" +
        "  packrun run --pack image-scan --detach --format json\n" +
        "  packrun run --pack nightly-report --not-before 2026-01-31T22:00:00Z --timeout 30m --detach\n\n" +
        "JSON output: the final run (GET /api/runs/{id}); with --detach {run, created}.\n",
    )
    .action(async (positional: string | undefined, options: RunOptions) => {
      const { body, source } = await submission(positional, options);
      const { client } = await connect(options);
      const submitted = await client.submitRun(body, source);
      await followStartedRun(client, submitted, submittedLine(submitted), {
        json: options.format === "json",
        detach: options.detach === true,
      });
    });
}
