/**
 * The signed-in token: kept in this tab's sessionStorage only (gone when the tab closes, never
 * in the URL, never shared with other tabs).
 */
const tokenKey = "packrun.console.token";
const devKey = "packrun.console.dev";

/** Who a token says it is (read for display only; the gateway verifies every request). */
export interface TokenClaims {
  readonly subject: string;
  readonly tenant: string;
  readonly scopes: readonly string[];
  readonly expiresAt: Date | undefined;
}

/** The token of this tab, or undefined when signed out. */
export function sessionToken(): string | undefined {
  return sessionStorage.getItem(tokenKey) ?? undefined;
}

/** Whether this tab signed in through the embedded default's dev mode. */
export function isDevSession(): boolean {
  return sessionStorage.getItem(devKey) === "1";
}

/** Keeps `token` for this tab. */
export function signIn(token: string, dev: boolean): void {
  sessionStorage.setItem(tokenKey, token.trim());
  if (dev) sessionStorage.setItem(devKey, "1");
  else sessionStorage.removeItem(devKey);
}

/** Forgets the token. */
export function signOut(): void {
  sessionStorage.removeItem(tokenKey);
  sessionStorage.removeItem(devKey);
}

function base64UrlJson(part: string): unknown {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The claims of a JWT, unverified, or undefined when it is not a JWT. */
export function tokenClaims(token: string): TokenClaims | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const claims = base64UrlJson(payload) as Record<string, unknown>;
    return {
      subject: typeof claims.sub === "string" ? claims.sub : "?",
      tenant: typeof claims.tenant === "string" ? claims.tenant : "?",
      scopes: typeof claims.scope === "string" ? claims.scope.split(" ") : [],
      expiresAt: typeof claims.exp === "number" ? new Date(claims.exp * 1000) : undefined,
    };
  } catch {
    return undefined;
  }
}

/**
 * Asks the gateway for the embedded default's local operator token. Answers undefined when the
 * gateway has no dev mode (404) or refuses this browser (403: not on loopback).
 */
export async function devSignIn(): Promise<string | undefined> {
  const response = await fetch("/console/dev-session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  if (!response.ok) return undefined;
  const body = (await response.json()) as { token: string };
  return body.token;
}
