import type { Problem } from "./api-types.ts";
import { sessionToken } from "./session.ts";

/** A refused or failed request, with the gateway's problem document when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Called when the gateway says the token is missing, invalid or expired. */
let onUnauthenticated: () => void = () => {};

/** Sets what happens on a 401 (the app signs out). */
export function whenUnauthenticated(handler: () => void): void {
  onUnauthenticated = handler;
}

/** Headers with the bearer token (`token` overrides the session's). */
export function authHeaders(token = sessionToken()): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const problem = JSON.parse(text) as Problem;
    return new ApiError(response.status, problem.code, problem.detail ?? problem.title);
  } catch {
    return new ApiError(response.status, "HTTP_ERROR", `${response.status} ${text.slice(0, 200)}`);
  }
}

/** A response of the API, thrown as ApiError unless 2xx. */
export async function request(
  path: string,
  init: RequestInit & { token?: string } = {},
): Promise<Response> {
  const { token, ...rest } = init;
  const headers = { ...authHeaders(token), ...(rest.headers as Record<string, string>) };
  const response = await fetch(path, { ...rest, headers });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && token === undefined) onUnauthenticated();
    throw error;
  }
  return response;
}

/** GET (or any method with `body`) a JSON answer. */
export async function api<T>(
  path: string,
  options: { method?: string; body?: unknown; token?: string } = {},
): Promise<T> {
  const response = await request(path, {
    method: options.method ?? (options.body === undefined ? "GET" : "POST"),
    ...(options.body === undefined
      ? {}
      : { body: JSON.stringify(options.body), headers: { "content-type": "application/json" } }),
    ...(options.token === undefined ? {} : { token: options.token }),
  });
  return (await response.json()) as T;
}

/** Percent-encodes one path segment. */
export const segment = (value: string): string => encodeURIComponent(value);
