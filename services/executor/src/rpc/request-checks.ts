import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { isTenantName, tenantNameRule } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";

/** The tenant name, or REQUEST_INVALID when it is not one. */
export function requireTenant(tenant: string): string {
  if (!isTenantName(tenant))
    throw new PackrunError("REQUEST_INVALID", `tenant must be ${tenantNameRule}`);
  return tenant;
}

const limits = { approver: 512, approvalId: 128, reason: 4096 } as const;
// Identities and ids go into events and logs verbatim: no control characters (nor NUL, which
// PostgreSQL cannot store).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const controlCharacter = /[\u0000-\u001f\u007f]/;

/** An approver identity: present, bounded, no control characters. */
export function requireApprover(approver: string): string {
  if (approver === "") throw new PackrunError("REQUEST_INVALID", "approver is required");
  if (approver.length > limits.approver || controlCharacter.test(approver))
    throw new PackrunError(
      "REQUEST_INVALID",
      `approver must be at most ${limits.approver} characters without control characters`,
    );
  return approver;
}

/** An approval or gate id (may be empty): bounded, no control characters. */
export function requireApprovalId(approvalId: string): string {
  if (approvalId.length > limits.approvalId || controlCharacter.test(approvalId))
    throw new PackrunError(
      "REQUEST_INVALID",
      `approval_id must be at most ${limits.approvalId} characters without control characters`,
    );
  return approvalId;
}

/** Furthest a run may be delayed (`not_before`). */
const maxDelayMs = 366 * 24 * 3600 * 1000;

/** A submission's `not_before` as a Date; undefined when unset. */
export function submissionNotBefore(value: Timestamp | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = timestampDate(value);
  if (Number.isNaN(date.getTime()) || date.getTime() > Date.now() + maxDelayMs)
    throw new PackrunError(
      "REQUEST_INVALID",
      "not_before must be a valid time at most 366 days ahead",
    );
  return date;
}

const errorCodePattern = /^[A-Z][A-Z0-9_]{0,63}$/;

/** A refusal's code (a stable error code) and reason (bounded, no NUL). */
export function requireRefusal(code: string, reason: string): void {
  if (!errorCodePattern.test(code))
    throw new PackrunError(
      "REQUEST_INVALID",
      "code must be a stable error code: 1-64 upper-case letters, digits or _, e.g. PERMISSION_DENIED",
    );
  if (reason.length > limits.reason || reason.includes("\u0000"))
    throw new PackrunError(
      "REQUEST_INVALID",
      `reason must be at most ${limits.reason} characters without NUL`,
    );
}
