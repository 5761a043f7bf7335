import { errorCatalog, isErrorCode } from "@packrun/errors";
import type { Problem, ProblemError } from "./api-types.ts";
import { CliError } from "./cli-error.ts";
import { ExitCode } from "./exit-codes.ts";

/**
 * An error answer of the gateway (an RFC 9457 problem document), carried as a CliError: its
 * message is the problem's detail, its `lines` list every entry of the problem's `errors`, and
 * its exit code comes from the catalogued `code` (or, for a code this CLI does not know, from
 * the HTTP status).
 */
export class GatewayError extends CliError {
  /** HTTP status of the answer. */
  readonly status: number;
  /** Stable packrun error code (docs/errors.md), or `HTTP_<status>` without a problem body. */
  readonly code: string;
  /** The problem document as received, when there was one. */
  readonly problem: Problem | undefined;

  constructor(
    message: string,
    options: { status: number; code: string; problem?: Problem; lines?: readonly string[] },
  ) {
    super(message, exitCodeForProblem(options.code, options.status), {
      lines: options.lines ?? [],
    });
    this.name = "GatewayError";
    this.status = options.status;
    this.code = options.code;
    this.problem = options.problem;
  }
}

/** The exit code of a failed answer with `code` and HTTP `status`. */
export function exitCodeForProblem(code: string, status: number): number {
  if (isErrorCode(code)) return errorCatalog[code].exit;
  return exitCodeForStatus(status);
}

/** The exit code for an HTTP error status when the body names no known code. */
export function exitCodeForStatus(status: number): number {
  if (status === 401 || status === 403) return ExitCode.auth;
  if (status === 404) return ExitCode.notFound;
  if (status === 408 || status === 429 || status === 502 || status === 503 || status === 504)
    return ExitCode.retryable;
  if (status === 400 || status === 413 || status === 415 || status === 422)
    return ExitCode.invalidInput;
  return ExitCode.error;
}

function isProblem(value: unknown): value is Problem {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  return typeof record.code === "string" && typeof record.title === "string";
}

/**
 * `path (line L:C): message` for one entry of a problem's `errors`; an empty path (the document
 * as a whole) reads `wholePath`.
 */
export function formatProblemError(entry: ProblemError, wholePath = "request"): string {
  const at =
    entry.line === undefined
      ? ""
      : ` (line ${entry.line}${entry.column === undefined ? "" : `:${entry.column}`})`;
  return `${entry.path === "" ? wholePath : entry.path}${at}: ${entry.message}`;
}

/**
 * Turns a non-2xx answer into a GatewayError. `body` is the answer's text; `prefix`, when
 * given, starts each `errors` line (e.g. the manifest file the request carried).
 */
export function gatewayErrorFromResponse(
  status: number,
  statusText: string,
  contentType: string | null,
  body: string,
  prefix?: string,
): GatewayError {
  let parsed: unknown;
  if (contentType?.includes("json")) {
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
  }
  if (!isProblem(parsed)) {
    const code = `HTTP_${status}`;
    return new GatewayError(
      `the gateway answered HTTP ${status}${statusText === "" ? "" : ` ${statusText}`} [${code}]`,
      { status, code },
    );
  }
  const problem = parsed;
  const entries = Array.isArray(problem.errors) ? problem.errors : [];
  // With an `errors` list the detail is the first entry again ("… (and 2 more)"): summarise
  // instead, so each problem is printed once, in the lines below.
  const count = `${entries.length} problem${entries.length === 1 ? "" : "s"}`;
  const summary =
    entries.length === 0
      ? (problem.detail ?? problem.title)
      : `${prefix ?? "the request"} is invalid (${count})`;
  const message = `${summary} [${problem.code}]`;
  const lines =
    entries.length === 0
      ? []
      : [
          `error: ${message}`,
          ...entries.map((entry) =>
            prefix === undefined
              ? formatProblemError(entry)
              : `${prefix}: ${formatProblemError(entry, "manifest")}`,
          ),
        ];
  return new GatewayError(message, { status, code: problem.code, problem, lines });
}

const networkReasons: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out",
  UND_ERR_SOCKET: "connection closed",
  UND_ERR_HEADERS_TIMEOUT: "no answer in time",
  UND_ERR_BODY_TIMEOUT: "no data in time",
};

/** The short reason of a fetch failure (fetch wraps the socket error as `cause`). */
export function describeNetworkError(error: unknown): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError"))
    return "timed out";
  // fetch says only "fetch failed"; the socket's error code (or message) is in the causes.
  let current: unknown = error;
  let innermost = error instanceof Error ? error.message : String(error);
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === "string") return networkReasons[code] ?? code;
    innermost = current.message;
    current = current.cause;
  }
  return innermost;
}

/**
 * A CliError (exit 10, retryable) for a request that never got an answer: the gateway is
 * down, unreachable or too slow.
 */
export function networkError(url: string, error: unknown): CliError {
  return new CliError(
    `cannot reach the gateway at ${url}: ${describeNetworkError(error)} (retryable)`,
    ExitCode.retryable,
    { cause: error },
  );
}
