/**
 * An error the CLI reports as is, without a stack: `message` is complete and safe to print
 * (it names the file and what is wrong). When `lines` are given (one per diagnostic), they are
 * printed instead of the message. The process exits with `exitCode`.
 */
export class CliError extends Error {
  readonly exitCode: number;
  readonly lines: readonly string[];

  constructor(
    message: string,
    exitCode: number,
    options: { cause?: unknown; lines?: readonly string[] } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CliError";
    this.exitCode = exitCode;
    this.lines = options.lines ?? [];
  }
}
