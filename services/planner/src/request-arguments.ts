import { isTenantName, tenantNameRule } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";
import { isCanonicalVersion } from "./version-order.ts";

// Same rule as metadata.name in the Task Pack schema.
const packNamePattern = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const maxPublisherLength = 256;

function invalid(message: string): PackrunError {
  return new PackrunError("REQUEST_INVALID", message);
}

// Arguments are echoed back in messages only once they are known to be short and printable.
function quote(value: string): string {
  return value.length <= 80 ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, 80))}...`;
}

/**
 * Checks a tenant id: 1-128 characters, letters, digits and `. _ : @ / -`, starting with a
 * letter or digit.
 * @throws PackrunError REQUEST_INVALID
 */
export function checkTenant(tenant: string): string {
  if (tenant === "") throw invalid("tenant is required");
  if (!isTenantName(tenant)) {
    throw invalid(`tenant ${quote(tenant)} is invalid: use ${tenantNameRule}`);
  }
  return tenant;
}

/**
 * Checks a pack name (the manifest's metadata.name rule).
 * @throws PackrunError REQUEST_INVALID
 */
export function checkPackName(name: string, field = "name"): string {
  if (name === "") throw invalid(`${field} is required`);
  if (!packNamePattern.test(name)) {
    throw invalid(
      `${field} ${quote(name)} is not a pack name: use 1-63 lowercase letters, digits, . and - starting and ending with a letter or digit`,
    );
  }
  return name;
}

/**
 * Checks an exact version, or "" where the caller means "the latest" (`allowLatest`).
 * @throws PackrunError REQUEST_INVALID
 */
export function checkVersion(
  version: string,
  options: { allowLatest: boolean; field?: string },
): string {
  const field = options.field ?? "version";
  if (version === "") {
    if (options.allowLatest) return version;
    throw invalid(`${field} is required`);
  }
  if (!isCanonicalVersion(version)) {
    throw invalid(
      `${field} ${quote(version)} is not a semantic version in canonical form such as 1.2.0 or 2.0.0-rc.1`,
    );
  }
  return version;
}

/**
 * Checks the subject recorded as publisher: required, at most 256 characters, no control
 * characters.
 * @throws PackrunError REQUEST_INVALID
 */
export function checkPublisher(publishedBy: string): string {
  if (publishedBy.trim() === "") throw invalid("published_by is required");
  if (publishedBy.length > maxPublisherLength) {
    throw invalid(`published_by is longer than ${maxPublisherLength} characters`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point.
  if (/[\u0000-\u001f\u007f]/.test(publishedBy)) {
    throw invalid("published_by must not contain control characters");
  }
  return publishedBy;
}
