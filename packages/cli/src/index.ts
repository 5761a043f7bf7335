/** Programmatic entry points of the packrun CLI (the executable is `bin.ts`). */
export type * from "./api-types.ts";
export { type CliConfigFile, parseCliConfig } from "./cli-config-file.ts";
export { CliError } from "./cli-error.ts";
export {
  type ConnectionFlags,
  type ConnectionSettings,
  loadConnectionSettings,
  resolveConnectionSettings,
} from "./connection-settings.ts";
export { ExitCode, exitCodeFor } from "./exit-codes.ts";
export { GatewayClient } from "./gateway-client.ts";
export { GatewayError } from "./gateway-error.ts";
export { createProgram, main } from "./main.ts";
export { parseInputAssignment, readInputs, type SuppliedInputs } from "./read-inputs.ts";
export { cliVersion } from "./version.ts";
