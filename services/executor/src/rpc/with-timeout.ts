import { PackrunError } from "@packrun/errors";
import type { SecretVault } from "../secrets/secret-vault.ts";

// Redis being down must not hold a submission: the run is stored and queued later, or (when
// it carries secrets, which only Redis may hold) refused as retryable.
/** How long a queue push may take before the reconciler is left to queue the steps. */
export const queueTimeoutMs = 2000;
const vaultTimeoutMs = 3000;

/** Resolves like `promise`, or rejects after `ms` (the promise itself goes on in the background). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Stores a run's secrets in the vault, or throws UNAVAILABLE (retryable: nothing was stored)
 * when the vault does not answer in time.
 */
export async function putRunSecrets(
  vault: SecretVault,
  runId: string,
  secrets: Readonly<Record<string, string>>,
): Promise<void> {
  try {
    await withTimeout(vault.put(runId, secrets), vaultTimeoutMs, "the secret store");
  } catch (cause) {
    throw new PackrunError(
      "UNAVAILABLE",
      "the secret store is unavailable; nothing was stored, retry later",
      { cause },
    );
  }
}
