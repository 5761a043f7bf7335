/** Scopes a packrun token may carry; each route of the gateway requires one. */
export const scopes = {
  /** Read packs, runs, logs, artifacts, attestations and bundles; simulate. */
  read: "packs.read",
  /** Publish pack versions to the registry. */
  write: "packs.write",
  /** Submit and cancel runs. */
  run: "packs.run",
  /** Decide approval gates (with a token bound to the run, gate and plan hash). */
  approve: "packs.approve",
} as const;

/** One packrun scope. */
export type Scope = (typeof scopes)[keyof typeof scopes];

/** Every scope, for tokens that may do everything (the embedded default's operator token). */
export const allScopes: readonly Scope[] = Object.values(scopes);

/** True when `value` names a packrun scope. */
export function isScope(value: string): value is Scope {
  return (allScopes as readonly string[]).includes(value);
}
