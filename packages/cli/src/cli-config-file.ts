import path from "node:path";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";

/**
 * The CLI's JSON config file (`$PACKRUN_HOME/cli.json` by default). The embedded default writes
 * one holding a dev operator token and the path of its local token signing key; people may
 * write their own. Every field is optional; flags and environment variables override it.
 */
export interface CliConfigFile {
  /** Gateway base URL, e.g. `http://127.0.0.1:8080`. */
  url?: string;
  /** Bearer token (JWT) sent with every request. */
  token?: string;
  /** Private JWK of a local token signing key (dev mode); relative to the config file. */
  signingKeyFile?: string;
  /** `iss` of tokens minted with the signing key. */
  issuer?: string;
  /** `aud` of tokens minted with the signing key. */
  audience?: string;
  /** Tenant of tokens minted with the signing key. */
  tenant?: string;
  /** `sub` of tokens minted with the signing key. */
  subject?: string;
  /** Groups of tokens minted with the signing key. */
  groups?: string[];
  /** Claim the tenant goes into when minting (default `tenant`). */
  tenantClaim?: string;
  /**
   * Files of public keys `packrun verify` trusts (PEM or JWK Set), relative to the config file;
   * used when neither --key nor PACKRUN_TRUSTED_KEYS names any.
   */
  trustedKeys?: string[];
}

const stringFields = [
  "url",
  "token",
  "signingKeyFile",
  "issuer",
  "audience",
  "tenant",
  "subject",
  "tenantClaim",
] as const;

/**
 * Parses and checks the text of a config file named `file`. Unknown fields are refused so a
 * typo (`tokn`) is reported rather than silently ignored; `signingKeyFile` is resolved against
 * the config file's directory.
 * @throws CliError (exit 2) naming the file and the field at fault
 */
export function parseCliConfig(text: string, file: string): CliConfigFile {
  const fail = (reason: string) =>
    new CliError(`config file ${file}: ${reason}`, ExitCode.invalidInput);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw fail(`not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    throw fail("must hold a JSON object");
  const record = parsed as Record<string, unknown>;
  const known = new Set<string>([...stringFields, "groups", "trustedKeys"]);
  const unknown = Object.keys(record).filter((key) => !known.has(key));
  if (unknown.length > 0)
    throw fail(`unknown field(s) ${unknown.join(", ")} (known: ${[...known].join(", ")})`);
  const config: CliConfigFile = {};
  for (const field of stringFields) {
    const value = record[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string" || value === "")
      throw fail(`${field} must be a non-empty string`);
    config[field] = value;
  }
  const groups = record.groups;
  if (groups !== undefined && groups !== null) {
    if (!Array.isArray(groups) || !groups.every((group) => typeof group === "string"))
      throw fail("groups must be an array of strings");
    config.groups = groups as string[];
  }
  const trustedKeys = record.trustedKeys;
  if (trustedKeys !== undefined && trustedKeys !== null) {
    if (
      !Array.isArray(trustedKeys) ||
      !trustedKeys.every((entry) => typeof entry === "string" && entry !== "")
    )
      throw fail("trustedKeys must be an array of key file paths");
    config.trustedKeys = trustedKeys.map((entry: string) =>
      path.resolve(path.dirname(file), entry),
    );
  }
  if (config.signingKeyFile !== undefined)
    config.signingKeyFile = path.resolve(path.dirname(file), config.signingKeyFile);
  return config;
}
