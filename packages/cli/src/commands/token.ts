import { allScopes, isScope, type Scope } from "@packrun/auth";
import type { Command } from "commander";
import { decodeJwt } from "jose";
import { CliError } from "../cli-error.ts";
import { readCliConfig } from "../connection-settings.ts";
import { ExitCode } from "../exit-codes.ts";
import { profileFromConfig } from "../gateway-options.ts";
import { mintLocalToken } from "../local-token.ts";
import { integerOption } from "../option-values.ts";
import { formatOption, type OutputFormat, renderJson } from "../output.ts";

interface TokenOptions {
  config?: string;
  keyFile?: string;
  issuer?: string;
  audience?: string;
  tenant?: string;
  subject?: string;
  scopes?: string;
  groups?: string;
  run?: string;
  gate?: string;
  planHash?: string;
  expires: number;
  format: OutputFormat;
}

/** A comma-separated list without blanks. */
function commaList(text: string): string[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

/**
 * The scopes of `--scopes` (default: all).
 * @throws CliError (exit 2) naming an unknown scope
 */
export function parseScopes(text: string | undefined): Scope[] {
  if (text === undefined) return [...allScopes];
  const names = commaList(text);
  const unknown = names.filter((name) => !isScope(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new CliError(
      `--scopes: ${unknown.length > 0 ? `unknown scope(s) ${unknown.join(", ")}` : "no scope given"} (known: ${allScopes.join(", ")})`,
      ExitCode.invalidInput,
    );
  }
  return names.filter(isScope);
}

/**
 * `packrun token`: mints a bearer token with a local signing key (dev mode, tests, the
 * embedded default) and prints just the token.
 */
export function registerTokenCommand(program: Command): void {
  program
    .command("token")
    .summary("mint a token with a local signing key (dev mode)")
    .description(
      "Sign a bearer token (JWT) with a local private key, for dev mode and tests; production " +
        "tokens come from your identity provider. Every claim defaults to the config file's " +
        "(signingKeyFile, issuer, audience, tenant, subject, groups). --run, --gate and " +
        "--plan-hash together bind the token to one approval gate, as `POST " +
        "/api/runs/{id}/approve` requires. Prints only the token.",
    )
    .option(
      "--config <file>",
      "CLI config file (default: PACKRUN_CLI_CONFIG, then $PACKRUN_HOME/cli.json)",
    )
    .option("--key-file <file>", "private JWK to sign with (default: the config's signingKeyFile)")
    .option("--issuer <iss>", "token issuer")
    .option("--audience <aud>", "token audience")
    .option("--tenant <tenant>", "tenant")
    .option("--subject <sub>", "who acts (recorded as submitter, approver...)")
    .option("--scopes <list>", `comma-separated scopes (default: all: ${allScopes.join(",")})`)
    .option("--groups <list>", "comma-separated groups (matched against approval grants)")
    .option("--run <id>", "approval binding: the run")
    .option("--gate <id>", "approval binding: the approval id")
    .option("--plan-hash <hash>", "approval binding: the run's plan hash")
    .option("--expires <seconds>", "lifetime in seconds", integerOption(1, 366 * 86_400), 3600)
    .addOption(formatOption("output format: table prints the bare token"))
    .addHelpText(
      "after",
      "\nExamples:\n  export PACKRUN_TOKEN=$(packrun token --scopes packs.read,packs.run)\n" +
        "  packrun token --run 3f2c... --gate release --plan-hash sha256:... --scopes packs.approve\n\n" +
        "JSON output: {token, claims}.\n",
    )
    .action(async (options: TokenOptions) => {
      const binding = [options.run, options.gate, options.planHash];
      const given = binding.filter((value) => value !== undefined).length;
      if (given !== 0 && given !== 3)
        throw new CliError(
          "an approval binding needs all of --run, --gate and --plan-hash",
          ExitCode.invalidInput,
        );
      const scopes = parseScopes(options.scopes);
      const { path: configPath, config } = await readCliConfig(options, process.env);
      const base = profileFromConfig(config);
      const token = await mintLocalToken(
        {
          ...base,
          keyFile: options.keyFile ?? base.keyFile,
          issuer: options.issuer ?? base.issuer,
          audience: options.audience ?? base.audience,
          tenant: options.tenant ?? base.tenant,
          subject: options.subject ?? base.subject,
          groups: options.groups === undefined ? base.groups : commaList(options.groups),
        },
        {
          scopes,
          expiresInSeconds: options.expires,
          approval:
            options.run === undefined ||
            options.gate === undefined ||
            options.planHash === undefined
              ? undefined
              : { runId: options.run, gateId: options.gate, planHash: options.planHash },
        },
        configPath,
      );
      process.stdout.write(
        options.format === "json" ? renderJson({ token, claims: decodeJwt(token) }) : `${token}\n`,
      );
    });
}
