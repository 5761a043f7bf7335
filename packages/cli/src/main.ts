import { Command, CommanderError } from "commander";
import { registerApprovalsCommand } from "./commands/approvals.ts";
import { registerApproveCommand } from "./commands/approve.ts";
import { registerArtifactsCommand } from "./commands/artifacts.ts";
import { registerBundleCommand } from "./commands/bundle.ts";
import { registerCancelCommand } from "./commands/cancel.ts";
import { registerDeadLettersCommand } from "./commands/dead-letters.ts";
import { registerLogsCommand } from "./commands/logs.ts";
import { registerPacksCommand } from "./commands/packs.ts";
import { registerPlanCommand } from "./commands/plan.ts";
import { registerRerunCommands } from "./commands/rerun.ts";
import { registerRunCommand } from "./commands/run.ts";
import { registerRunsCommand } from "./commands/runs.ts";
import { registerSchedulesCommand } from "./commands/schedules.ts";
import { registerSimulateCommand } from "./commands/simulate.ts";
import { registerTokenCommand } from "./commands/token.ts";
import { registerValidateCommand } from "./commands/validate.ts";
import { registerVerifyCommand } from "./commands/verify.ts";
import { ExitCode } from "./exit-codes.ts";
import { reportError } from "./report-error.ts";
import { cliVersion } from "./version.ts";

const exitCodeHelp = `
Exit codes:
  0   ok
  1   error (unexpected; PACKRUN_DEBUG=1 prints the stack)
  2   invalid input (manifest, inputs, arguments, unreadable files)
  3   authentication or permission
  4   not found
  5   sealed-mode violation
  6   verify: no trusted key given (--key, PACKRUN_TRUSTED_KEYS; or --integrity-only)
  7   verify: the bundle is not signed by a trusted key
  10  retryable (try again later)

Gateway commands find the gateway and token in --url/--token, then PACKRUN_URL/PACKRUN_TOKEN,
then the config file (--config, PACKRUN_CLI_CONFIG, default $PACKRUN_HOME/cli.json).
`;

/** Builds the `packrun` command tree; exported so tests and embedders can inspect it. */
export function createProgram(): Command {
  const program = new Command("packrun")
    .description(
      "Task Pack runner: plan and simulate packs offline; run, follow, approve and verify them " +
        "through the packrun gateway.",
    )
    .version(cliVersion, "-V, --version", "print the packrun version")
    // Throw instead of exiting so main() decides the exit code; set before the subcommands
    // are created, which inherit it.
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    // "Did you mean …?" for misspelled commands and options (inherited by every subcommand).
    .showSuggestionAfterError()
    .addHelpText("after", exitCodeHelp);
  registerValidateCommand(program);
  registerPlanCommand(program);
  registerSimulateCommand(program);
  registerVerifyCommand(program);
  registerRunCommand(program);
  registerRunsCommand(program);
  registerSchedulesCommand(program);
  registerLogsCommand(program);
  registerApproveCommand(program);
  registerApprovalsCommand(program);
  registerCancelCommand(program);
  registerRerunCommands(program);
  registerDeadLettersCommand(program);
  registerArtifactsCommand(program);
  registerBundleCommand(program);
  registerPacksCommand(program);
  registerTokenCommand(program);
  return program;
}

/**
 * Runs the CLI on `argv` (as in `process.argv`: node, script, then arguments) and returns the
 * exit code instead of exiting, so pending output is flushed by a normal exit.
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await createProgram().parseAsync([...argv]);
    return ExitCode.ok;
  } catch (error) {
    // Commander has already printed the usage problem (or the help/version it was asked for).
    if (error instanceof CommanderError)
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.invalidInput;
    return reportError(error);
  }
}
