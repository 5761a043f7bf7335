import { type BundleReport, type VerificationKey, verifyBundle } from "@packrun/attestation";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { printable } from "./printable.ts";

/**
 * Verifies an evidence bundle offline against trusted `keys` (loaded keys or PEM text). Without
 * keys the report fails (no trusted key) unless `integrityOnly`, which checks the signatures with
 * the bundle's own keys: integrity, not origin.
 * @throws CliError (exit 2) when the bytes cannot be read as a bundle at all
 */
export async function verifyBundleBytes(
  bytes: Uint8Array,
  keys: readonly (VerificationKey | string)[],
  name: string,
  options: { integrityOnly?: boolean } = {},
): Promise<BundleReport> {
  try {
    return await verifyBundle(bytes, {
      keys: [...keys],
      integrityOnly: options.integrityOnly === true,
    });
  } catch (error) {
    throw new CliError(
      `${name}: ${error instanceof Error ? error.message : String(error)}`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
}

function signer(report: BundleReport): string {
  const bundleKey =
    report.bundleKeyId !== undefined && report.bundleKeyId !== report.keyId
      ? `, member list signed by key ${printable(report.bundleKeyId)}`
      : "";
  return `signed by key ${printable(report.keyId ?? "?")}${bundleKey}`;
}

/** Every check of a report as `✔/✖ check member: message`, then the one-line verdict. */
export function renderBundleReport(report: BundleReport): string {
  const lines = report.checks.map(
    (check) =>
      `${check.ok ? "✔" : "✖"} ${check.check}${check.member === undefined ? "" : ` ${printable(check.member)}`}: ${printable(check.message)}`,
  );
  const summary = report.ok
    ? `verified: run ${printable(report.runId ?? "?")} (${printable(report.pack?.name ?? "?")}@${printable(report.pack?.version ?? "?")}, ${printable(report.status ?? "?")}), plan ${printable(report.planHash ?? "?")}, ${signer(report)}${report.keyTrusted ? " (trusted)" : " (the bundle's own key: integrity only, origin NOT verified; pass --key to prove origin)"}`
    : `NOT verified: ${report.failures.length} check(s) failed`;
  return `${lines.join("\n")}\n${summary}\n`;
}

/**
 * The error of a report that did not verify, naming the failed checks; else undefined. Exit 6
 * when no trusted key was given, 7 when a signature does not verify under the trusted keys, 2
 * for anything else (a member altered, added or missing).
 */
export function bundleFailure(report: BundleReport, name: string): CliError | undefined {
  if (report.ok) return undefined;
  if (report.failures.some((check) => check.check === "trusted-key")) {
    return new CliError(
      `${name}: not verified: no trusted key, so anyone could have signed this bundle; pass the evidence service's public key(s) with --key FILE or PACKRUN_TRUSTED_KEYS (PEM or the JWK Set from GET /.well-known/packrun/signing-keys), or --integrity-only to check integrity without origin`,
      ExitCode.noTrustedKey,
    );
  }
  const unsigned = report.failures.filter(
    (check) => check.check === "signature" && report.trust === "trusted",
  );
  if (unsigned.length > 0) {
    return new CliError(
      `${name}: not verified: not signed by a trusted key (${unsigned.map((check) => printable(check.member ?? "?")).join(", ")})`,
      ExitCode.untrustedSignature,
    );
  }
  const layout = report.failures.find((check) => check.check === "bundle-version");
  if (layout !== undefined) {
    return new CliError(
      `${name}: not verified: ${printable(layout.message)}`,
      ExitCode.invalidInput,
    );
  }
  const failed = report.failures
    .map((check) => `${check.check}${check.member === undefined ? "" : ` ${check.member}`}`)
    .join(", ");
  return new CliError(`${name}: not verified: ${printable(failed)}`, ExitCode.invalidInput);
}
