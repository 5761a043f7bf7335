import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isPackrunError, type PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { DiagnosticsSchema } from "@packrun/proto/pack/v1";

/** Response header / trailer carrying the stable packrun error code. */
export const errorCodeHeader = "packrun-error-code";

interface DiagnosticsDetails {
  diagnostics: {
    code: string;
    path: string;
    line: number;
    column: number;
    message: string;
  }[];
}

function hasDiagnostics(details: unknown): details is DiagnosticsDetails {
  return (
    typeof details === "object" &&
    details !== null &&
    Array.isArray((details as { diagnostics?: unknown }).diagnostics)
  );
}

/** Converts a PackrunError into the ConnectError a client sees (code, message, diagnostics). */
export function packrunErrorToConnect(error: PackrunError): ConnectError {
  const details = hasDiagnostics(error.details)
    ? [{ desc: DiagnosticsSchema, value: { diagnostics: error.details.diagnostics } }]
    : [];
  return new ConnectError(
    error.message,
    error.info.connect,
    { [errorCodeHeader]: error.code },
    details,
  );
}

// Node socket errors and PostgreSQL's class 08 (connection exception) and 57P0x (the server
// shutting down or starting up): a lost or restarting database, which a retry can outlive.
const unavailableErrnos = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
]);
function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (unavailableErrnos.has(code) || /^(08|57P0)/.test(code)))
    return true;
  return /Connection terminated|connection to server .* closed|timeout exceeded when trying to connect/i.test(
    error.message,
  );
}

/** Maps anything thrown by a handler to what may cross the RPC boundary. */
export function toConnectError(error: unknown, logger: Logger, procedure: string): ConnectError {
  if (isPackrunError(error)) {
    if (error.code === "INTERNAL") logger.error({ err: error, procedure }, "internal error");
    return packrunErrorToConnect(error);
  }
  if (error instanceof ConnectError) return error;
  if (isDatabaseUnavailable(error)) {
    logger.warn({ err: error, procedure }, "database unavailable");
    return new ConnectError("the database is unavailable; retry shortly", Code.Unavailable, {
      [errorCodeHeader]: "UNAVAILABLE",
    });
  }
  // Unexpected errors keep their detail in the log only: no stack or internal message leaks.
  logger.error({ err: error, procedure }, "unhandled error in RPC handler");
  return new ConnectError("internal error", Code.Internal, { [errorCodeHeader]: "INTERNAL" });
}

async function* mapStreamErrors<T>(
  stream: AsyncIterable<T>,
  logger: Logger,
  procedure: string,
): AsyncIterable<T> {
  try {
    yield* stream;
  } catch (error) {
    throw toConnectError(error, logger, procedure);
  }
}

/** Server interceptor applying {@link toConnectError} to unary results and streams alike. */
export function errorMappingInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    const procedure = request.method.name;
    try {
      const response = await next(request);
      if (response.stream) {
        return { ...response, message: mapStreamErrors(response.message, logger, procedure) };
      }
      return response;
    } catch (error) {
      throw toConnectError(error, logger, procedure);
    }
  };
}
