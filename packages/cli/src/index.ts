/** Programmatic entry points of the packrun CLI (the executable is `bin.ts`). */
export { CliError } from "./cli-error.ts";
export { ExitCode, exitCodeFor } from "./exit-codes.ts";
export { createProgram, main } from "./main.ts";
export { parseInputAssignment, readInputs, type SuppliedInputs } from "./read-inputs.ts";
export { cliVersion } from "./version.ts";
