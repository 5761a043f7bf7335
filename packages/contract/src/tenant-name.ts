/**
 * The one rule for tenant names, checked by the gateway (token claim), the planner, the executor
 * and the evidence service alike: a name one service accepts must not be refused by the next.
 * Letters, digits and `. _ : @ / -` fit issuers' tenant ids (e.g. `org:acme`, `acme/eu`) and are
 * safe in Redis keys, NOTIFY payloads, logs and bundle metadata; a leading letter or digit keeps
 * names from looking like paths or options.
 */
export const tenantNamePattern = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/;

/** The rule in words, for error messages. */
export const tenantNameRule =
  "1-128 letters, digits or . _ : @ / -, starting with a letter or digit";

/** True when `value` is a valid tenant name. */
export function isTenantName(value: string): boolean {
  return tenantNamePattern.test(value);
}
