import { type ApprovalBinding, localSigningAlgorithm, mintToken, type Scope } from "@packrun/auth";
import type { JWK } from "jose";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { readTextFile } from "./read-text-file.ts";

/** What a locally minted token is signed with and says; each field may come from a flag. */
export interface LocalTokenProfile {
  keyFile?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  tenant?: string | undefined;
  subject?: string | undefined;
  groups?: readonly string[] | undefined;
  tenantClaim?: string | undefined;
}

/** What the one token minted now is for. */
export interface LocalTokenRequest {
  scopes: readonly Scope[];
  approval?: ApprovalBinding | undefined;
  expiresInSeconds?: number | undefined;
}

/**
 * Reads a private JWK (the dev-mode token signing key written by the embedded default or
 * `@packrun/auth`'s loadOrCreateLocalSigningKey).
 * @throws CliError (exit 2) when the file is unreadable or not a private JWK
 */
export async function readSigningKey(file: string): Promise<JWK> {
  const text = await readTextFile(file, "signing key", 64 * 1024);
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    key = undefined;
  }
  if (
    key === null ||
    typeof key !== "object" ||
    typeof (key as JWK).kty !== "string" ||
    typeof (key as JWK).d !== "string"
  ) {
    throw new CliError(
      `signing key ${file} is not a private JWK (expected JSON with "kty" and "d")`,
      ExitCode.invalidInput,
    );
  }
  const jwk = key as JWK;
  return jwk.alg === undefined ? { ...jwk, alg: localSigningAlgorithm } : jwk;
}

/** The fields of `profile` a token cannot be minted without, as `what (how to give it)`. */
export function missingProfileFields(profile: LocalTokenProfile, configPath: string): string[] {
  const needs: [keyof LocalTokenProfile, string, string][] = [
    ["keyFile", "signing key", `--key-file or "signingKeyFile" in ${configPath}`],
    ["issuer", "issuer", `--issuer or "issuer" in ${configPath}`],
    ["audience", "audience", `--audience or "audience" in ${configPath}`],
    ["tenant", "tenant", `--tenant or "tenant" in ${configPath}`],
    ["subject", "subject", `--subject or "subject" in ${configPath}`],
  ];
  return needs
    .filter(([field]) => profile[field] === undefined || profile[field] === "")
    .map(([, what, how]) => `${what} (${how})`);
}

/**
 * Signs a token with the local key of `profile` (dev mode and tests; production tokens come
 * from the operator's identity provider).
 * @throws CliError (exit 2) naming every missing field, or the unreadable key
 */
export async function mintLocalToken(
  profile: LocalTokenProfile,
  request: LocalTokenRequest,
  configPath: string,
): Promise<string> {
  const missing = missingProfileFields(profile, configPath);
  const { keyFile, issuer, audience, tenant, subject } = profile;
  if (
    missing.length > 0 ||
    keyFile === undefined ||
    issuer === undefined ||
    audience === undefined ||
    tenant === undefined ||
    subject === undefined
  ) {
    throw new CliError(`cannot mint a token: missing ${missing.join(", ")}`, ExitCode.invalidInput);
  }
  const key = await readSigningKey(keyFile);
  try {
    return await mintToken({
      key,
      issuer,
      audience,
      tenant,
      subject,
      scopes: request.scopes,
      ...(profile.groups === undefined ? {} : { groups: profile.groups }),
      ...(request.approval === undefined ? {} : { approval: request.approval }),
      ...(request.expiresInSeconds === undefined
        ? {}
        : { expiresInSeconds: request.expiresInSeconds }),
      ...(profile.tenantClaim === undefined ? {} : { tenantClaim: profile.tenantClaim }),
    });
  } catch (error) {
    throw new CliError(
      `cannot sign with ${keyFile}: ${error instanceof Error ? error.message : String(error)}`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
}
