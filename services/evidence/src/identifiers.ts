import { isTenantName, tenantNameRule } from "@packrun/contract";
import { PackrunError } from "@packrun/errors";

// Printable ASCII without spaces: safe in NOTIFY payloads, logs and bundle metadata.
const identifier = /^[\x21-\x7e]{1,200}$/;

/**
 * Checks a run id (or another identifier) from a request.
 * @throws PackrunError REQUEST_INVALID naming the field
 */
export function requireIdentifier(field: string, value: string): string {
  if (!identifier.test(value)) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `${field} must be 1-200 printable ASCII characters without spaces`,
    );
  }
  return value;
}

/**
 * Checks a tenant name (the rule every service shares).
 * @throws PackrunError REQUEST_INVALID naming the field
 */
export function requireTenant(value: string): string {
  if (!isTenantName(value))
    throw new PackrunError("REQUEST_INVALID", `tenant must be ${tenantNameRule}`);
  return value;
}

/** Checks the tenant and run id of a request. */
export function requireRunRef(request: { tenant: string; runId: string }): {
  tenant: string;
  runId: string;
} {
  return {
    tenant: requireTenant(request.tenant),
    runId: requireIdentifier("run_id", request.runId),
  };
}
