import { InvalidArgumentError } from "commander";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";

/** Commander collector for a repeatable option: every value, in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Commander parser for a whole-number option within [min, max]; a bad value is a usage error
 * (exit 2) naming the range.
 */
export function integerOption(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const parsed = Number(value);
    if (
      !/^-?\d+$/.test(value.trim()) ||
      !Number.isSafeInteger(parsed) ||
      parsed < min ||
      parsed > max
    )
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return parsed;
  };
}

/**
 * Splits `KEY=value` (as given to `--label`, `--secret`...) at the first `=`. The key must be
 * non-empty; the value may be empty or hold more `=`. The error never echoes the value (it may
 * be a secret).
 * @throws CliError (exit 2) when there is no `KEY=`
 */
export function splitAssignment(flag: string, assignment: string): [key: string, value: string] {
  const equals = assignment.indexOf("=");
  const key = equals < 0 ? "" : assignment.slice(0, equals).trim();
  if (key === "") throw new CliError(`${flag} must have the form KEY=value`, ExitCode.invalidInput);
  return [key, assignment.slice(equals + 1)];
}
