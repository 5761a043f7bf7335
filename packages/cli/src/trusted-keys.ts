import { delimiter } from "node:path";
import type { VerificationKey } from "@packrun/attestation";
import { readCliConfig } from "./connection-settings.ts";
import { readKeyFiles } from "./read-binary-file.ts";

/**
 * The keys `verify` trusts: the `--key` files when given, else the files PACKRUN_TRUSTED_KEYS
 * names (so a CI job can set it once), else the config file's `trustedKeys`, else none, and
 * verification then fails closed.
 * @throws CliError (exit 2) naming a file that cannot be read or holds no usable key
 */
export async function trustedKeys(
  flagFiles: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<VerificationKey[]> {
  if (flagFiles.length > 0) return readKeyFiles(flagFiles);
  // Trusted key files, separated like PATH (`:`; `;` on Windows).
  const files = (env.PACKRUN_TRUSTED_KEYS ?? "").split(delimiter).filter((file) => file !== "");
  if (files.length > 0) return readKeyFiles(files);
  const { config } = await readCliConfig({}, env);
  return readKeyFiles(config.trustedKeys ?? []);
}
