import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorCode, errorCatalog, isErrorCode, isPackrunError } from "@packrun/errors";
import { DiagnosticsSchema } from "@packrun/proto/pack/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import type { ProblemJson } from "./api-schemas.ts";

/** Media type of RFC 9457 problem documents. */
export const problemContentType = "application/problem+json";

/** Base of the `type` URIs; each code's entry is documented in docs/errors.md. */
const typeBase = "https://packrun.dev/errors/";

type ProblemItem = NonNullable<ProblemJson["errors"]>[number];

/** A problem document for `code`; `detail` must be safe to show the caller. */
export function problem(
  code: ErrorCode,
  detail: string,
  options: { instance?: string; errors?: readonly ProblemItem[] } = {},
): ProblemJson {
  const info = errorCatalog[code];
  return {
    type: `${typeBase}${code.toLowerCase().replaceAll("_", "-")}`,
    title: info.title,
    status: info.http,
    detail,
    code,
    ...(options.instance === undefined ? {} : { instance: options.instance }),
    ...(options.errors === undefined || options.errors.length === 0
      ? {}
      : { errors: [...options.errors] }),
  };
}

// Downstream failures without a packrun code: only transport-level ones are worth a
// specific answer; anything else is an internal error whose message is not shown.
function codeOfConnectError(error: ConnectError): ErrorCode {
  const header = error.metadata.get(errorCodeHeader);
  if (header !== null && isErrorCode(header)) return header;
  switch (error.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Aborted:
      return "UNAVAILABLE";
    default:
      return "INTERNAL";
  }
}

function diagnosticsOf(error: ConnectError): ProblemItem[] {
  return error.findDetails(DiagnosticsSchema).flatMap((details) =>
    details.diagnostics.map((diagnostic) => ({
      path: diagnostic.path,
      message: diagnostic.message,
      ...(diagnostic.line > 0 ? { line: diagnostic.line, column: diagnostic.column } : {}),
    })),
  );
}

/**
 * The problem document for any error a route throws: packrun errors keep their code and
 * message; errors from the planner, executor or evidence keep the code they carried over gRPC
 * (and the manifest diagnostics); anything else becomes INTERNAL with a generic detail, so no
 * stack trace or internal message reaches the caller.
 */
export function problemFromError(error: unknown, instance?: string): ProblemJson {
  const at = instance === undefined ? {} : { instance };
  if (isPackrunError(error)) {
    const details = error.details as { diagnostics?: unknown } | undefined;
    const errors = Array.isArray(details?.diagnostics)
      ? (details.diagnostics as ProblemItem[]).map((d) => ({
          path: String(d.path),
          message: String(d.message),
          ...(typeof d.line === "number" && d.line > 0
            ? { line: d.line, column: Number(d.column) }
            : {}),
        }))
      : [];
    return problem(error.code, error.message, { ...at, errors });
  }
  if (error instanceof ConnectError) {
    const code = codeOfConnectError(error);
    const detail =
      code === "INTERNAL"
        ? "the request failed inside packrun; the gateway log has the details"
        : code === "UNAVAILABLE" && error.metadata.get(errorCodeHeader) === null
          ? "a packrun service is unavailable; retry shortly"
          : error.rawMessage;
    return problem(code, detail, { ...at, errors: diagnosticsOf(error) });
  }
  return problem(
    "INTERNAL",
    "the request failed inside packrun; the gateway log has the details",
    at,
  );
}
