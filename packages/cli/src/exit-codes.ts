import { isPackrunError } from "@packrun/errors";
import { CliError } from "./cli-error.ts";

/**
 * The documented exit codes of `packrun`. Scripts branch on them, so a code never changes
 * meaning; the gateway commands use auth, not-found and retryable.
 */
export const ExitCode = {
  ok: 0,
  /** Anything unexpected; the message says what. */
  error: 1,
  /** Invalid manifest, inputs, arguments or unreadable files: fix the call and retry. */
  invalidInput: 2,
  /** Not authenticated or not allowed. */
  auth: 3,
  /** The pack, version or run does not exist. */
  notFound: 4,
  /** A step tried to reach the network in sealed mode. */
  sealedViolation: 5,
  /**
   * `verify`/`bundle`: no trusted key was given (--key, PACKRUN_TRUSTED_KEYS), so the bundle's
   * origin cannot be checked; --integrity-only opts out explicitly.
   */
  noTrustedKey: 6,
  /** `verify`/`bundle`: a signature in the bundle does not verify under the trusted keys. */
  untrustedSignature: 7,
  /** A transient failure (e.g. the gateway is unavailable): the same call may succeed later. */
  retryable: 10,
} as const;

/** One of the documented exit codes. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit code an error maps to: its own, its catalogued code's, or 1 when unexpected. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (isPackrunError(error)) return error.info.exit;
  return ExitCode.error;
}
