import { Command, CommanderError } from "commander";
import { registerPlanCommand } from "./commands/plan.ts";
import { registerSimulateCommand } from "./commands/simulate.ts";
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
  10  retryable (try again later)
`;

/** Builds the `packrun` command tree; exported so tests and embedders can inspect it. */
export function createProgram(): Command {
  const program = new Command("packrun")
    .description("Task Pack runner: plan, simulate and run declarative workflow packs.")
    .version(cliVersion, "-V, --version", "print the packrun version")
    // Throw instead of exiting so main() decides the exit code; set before the subcommands
    // are created, which inherit it.
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", exitCodeHelp);
  registerValidateCommand(program);
  registerPlanCommand(program);
  registerSimulateCommand(program);
  registerVerifyCommand(program);
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
