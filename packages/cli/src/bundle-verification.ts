import { type BundleReport, verifyBundle } from "@packrun/attestation";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";
import { printable } from "./printable.ts";

/**
 * Verifies an evidence bundle offline against `keys` (PEM public keys; none: the bundle's own
 * key, which proves integrity but not origin).
 * @throws CliError (exit 2) when the bytes cannot be read as a bundle at all
 */
export async function verifyBundleBytes(
  bytes: Uint8Array,
  keys: readonly string[],
  name: string,
): Promise<BundleReport> {
  try {
    return await verifyBundle(bytes, keys.length > 0 ? { keys: [...keys] } : {});
  } catch (error) {
    throw new CliError(
      `${name}: ${error instanceof Error ? error.message : String(error)}`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
}

/** Every check of a report as `✔/✖ check member: message`, then the one-line verdict. */
export function renderBundleReport(report: BundleReport): string {
  const lines = report.checks.map(
    (check) =>
      `${check.ok ? "✔" : "✖"} ${check.check}${check.member === undefined ? "" : ` ${printable(check.member)}`}: ${printable(check.message)}`,
  );
  const summary = report.ok
    ? `verified: run ${printable(report.runId ?? "?")} (${printable(report.pack?.name ?? "?")}@${printable(report.pack?.version ?? "?")}, ${printable(report.status ?? "?")}), plan ${printable(report.planHash ?? "?")}, signed by key ${printable(report.keyId ?? "?")}${report.keyTrusted ? " (trusted)" : " (the bundle's own key: integrity only; pass --key to prove origin)"}`
    : `NOT verified: ${report.failures.length} check(s) failed`;
  return `${lines.join("\n")}\n${summary}\n`;
}

/** The error (exit 2) of a report that did not verify, naming the failed checks; else undefined. */
export function bundleFailure(report: BundleReport, name: string): CliError | undefined {
  if (report.ok) return undefined;
  const failed = report.failures
    .map((check) => `${check.check}${check.member === undefined ? "" : ` ${check.member}`}`)
    .join(", ");
  return new CliError(`${name}: not verified: ${printable(failed)}`, ExitCode.invalidInput);
}
