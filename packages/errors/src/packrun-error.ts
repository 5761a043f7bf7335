import { type ErrorCode, errorCatalog } from "./catalog.ts";

/**
 * The one error type packrun code throws on purpose. `code` is stable and catalogued; `message`
 * is safe to show to the caller (it never holds a secret or an internal detail); `details` carry
 * structured, caller-safe context such as YAML diagnostics.
 */
export class PackrunError<Details = unknown> extends Error {
  readonly code: ErrorCode;
  readonly details: Details | undefined;

  constructor(code: ErrorCode, message: string, options?: { details?: Details; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PackrunError";
    this.code = code;
    this.details = options?.details;
  }

  /** The catalog entry of this error's code. */
  get info() {
    return errorCatalog[this.code];
  }
}

/** True for PackrunError instances, including ones from another copy of this module. */
export function isPackrunError(value: unknown): value is PackrunError {
  return value instanceof PackrunError;
}
