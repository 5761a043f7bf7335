import { readFile } from "node:fs/promises";
import path from "node:path";
import { type CliConfigFile, parseCliConfig } from "./cli-config-file.ts";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { describeFsError } from "./fs-errors.ts";

/** The connection flags every gateway command accepts. */
export interface ConnectionFlags {
  url?: string | undefined;
  token?: string | undefined;
  config?: string | undefined;
}

/** Where a setting came from; error messages and the approval logic use it. */
export type SettingSource = "flag" | "env" | "file";

/** How to reach the gateway and, in dev mode, how to mint tokens. */
export interface ConnectionSettings {
  /** Gateway base URL without a trailing slash. */
  url: string | undefined;
  urlSource: SettingSource | undefined;
  token: string | undefined;
  tokenSource: SettingSource | undefined;
  /** The config file consulted (it may not exist when it is the default one). */
  configPath: string;
  /** The config file's content ({} when the default file does not exist). */
  config: CliConfigFile;
}

/** Where the config file is: --config, then PACKRUN_CLI_CONFIG, then $PACKRUN_HOME/cli.json. */
export function configFilePath(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv,
): { path: string; explicit: boolean } {
  if (flags.config !== undefined) return { path: flags.config, explicit: true };
  const fromEnv = env.PACKRUN_CLI_CONFIG;
  if (fromEnv !== undefined && fromEnv !== "") return { path: fromEnv, explicit: true };
  const home =
    env.PACKRUN_HOME !== undefined && env.PACKRUN_HOME !== "" ? env.PACKRUN_HOME : ".packrun";
  return { path: path.join(home, "cli.json"), explicit: false };
}

function pick(
  flag: string | undefined,
  fromEnv: string | undefined,
  fromFile: string | undefined,
): [string | undefined, SettingSource | undefined] {
  if (flag !== undefined && flag !== "") return [flag, "flag"];
  if (fromEnv !== undefined && fromEnv !== "") return [fromEnv, "env"];
  if (fromFile !== undefined) return [fromFile, "file"];
  return [undefined, undefined];
}

/**
 * Merges the three sources, flags over environment over config file. Pure: the file is
 * already read. The URL is checked (http or https) and loses any trailing slash.
 * @throws CliError (exit 2) for a malformed URL, naming where it came from
 */
export function resolveConnectionSettings(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv,
  config: CliConfigFile,
  configPath: string,
): ConnectionSettings {
  const [rawUrl, urlSource] = pick(flags.url, env.PACKRUN_URL, config.url);
  const [token, tokenSource] = pick(flags.token, env.PACKRUN_TOKEN, config.token);
  let url: string | undefined;
  if (rawUrl !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(rawUrl);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
      const where =
        urlSource === "flag"
          ? "--url"
          : urlSource === "env"
            ? "PACKRUN_URL"
            : `url in ${configPath}`;
      throw new CliError(
        `invalid gateway URL ${JSON.stringify(rawUrl)} (from ${where}): expected http://host:port or https://...`,
        ExitCode.invalidInput,
      );
    }
    url = rawUrl.replace(/\/+$/, "");
  }
  return { url, urlSource, token, tokenSource, configPath, config };
}

/** Reads the config file, if any: a missing default file is fine, a missing named one is not. */
export async function readCliConfig(flags: ConnectionFlags, env: NodeJS.ProcessEnv) {
  const { path: file, explicit } = configFilePath(flags, env);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if (!explicit && (error as NodeJS.ErrnoException).code === "ENOENT")
      return { path: file, config: {} };
    throw new CliError(
      `cannot read config file ${file}: ${describeFsError(error)}`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
  return { path: file, config: parseCliConfig(text, file) };
}

/** Reads the config file and resolves the settings against `flags` and `env`. */
export async function loadConnectionSettings(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ConnectionSettings> {
  const { path: file, config } = await readCliConfig(flags, env);
  return resolveConnectionSettings(flags, env, config, file);
}

/**
 * The gateway URL, or a CliError (exit 2) that says every way to give one.
 */
export function requireUrl(settings: ConnectionSettings): string {
  if (settings.url !== undefined) return settings.url;
  throw new CliError(
    `no gateway URL: pass --url, set PACKRUN_URL or put "url" in ${settings.configPath}`,
    ExitCode.invalidInput,
  );
}
