import { allScopes } from "@packrun/auth";
import type { Command } from "commander";
import type { CliConfigFile } from "./cli-config-file.ts";
import { CliError } from "./cli-error.ts";
import {
  type ConnectionFlags,
  type ConnectionSettings,
  loadConnectionSettings,
  requireUrl,
} from "./connection-settings.ts";
import { ExitCode } from "./exit-codes.ts";
import { GatewayClient } from "./gateway-client.ts";
import { type LocalTokenProfile, mintLocalToken } from "./local-token.ts";
import { formatOption, type OutputFormat } from "./output.ts";

/** Options every command that talks to the gateway accepts. */
export interface GatewayOptions extends ConnectionFlags {
  format: OutputFormat;
}

/** Adds `--url`, `--token`, `--config` and `--format` to a gateway command. */
export function addGatewayOptions(command: Command): Command {
  return command
    .option("--url <url>", "gateway base URL (default: PACKRUN_URL, then the config file)")
    .option("--token <jwt>", "bearer token (default: PACKRUN_TOKEN, then the config file)")
    .option(
      "--config <file>",
      "CLI config file (default: PACKRUN_CLI_CONFIG, then $PACKRUN_HOME/cli.json)",
    )
    .addOption(formatOption());
}

/** The local-token profile of a config file: what `signingKeyFile` tokens are minted with. */
export function profileFromConfig(config: CliConfigFile): LocalTokenProfile {
  return {
    keyFile: config.signingKeyFile,
    issuer: config.issuer,
    audience: config.audience,
    tenant: config.tenant,
    subject: config.subject,
    groups: config.groups,
    tenantClaim: config.tenantClaim,
  };
}

/** Lifetime of the operator token minted in dev mode when no token is configured. */
const devTokenSeconds = 15 * 60;

/**
 * The bearer token: from --token, PACKRUN_TOKEN or the config file; in dev mode (a config file
 * with `signingKeyFile` and no token) a short-lived token with every scope is minted.
 * @throws CliError (exit 3) when there is no way to authenticate
 */
export async function bearerToken(settings: ConnectionSettings): Promise<string> {
  if (settings.token !== undefined) return settings.token;
  if (settings.config.signingKeyFile !== undefined) {
    return mintLocalToken(
      profileFromConfig(settings.config),
      { scopes: allScopes, expiresInSeconds: devTokenSeconds },
      settings.configPath,
    );
  }
  throw new CliError(
    `no token: pass --token, set PACKRUN_TOKEN or put "token" in ${settings.configPath}`,
    ExitCode.auth,
  );
}

/** A connected client with the settings it was made from. */
export interface Connection {
  client: GatewayClient;
  settings: ConnectionSettings;
}

/** Resolves the connection settings of `options` and makes a client. */
export async function connect(
  options: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Connection> {
  const settings = await loadConnectionSettings(options, env);
  const baseUrl = requireUrl(settings);
  const token = await bearerToken(settings);
  return { client: new GatewayClient({ baseUrl, token }), settings };
}
