/**
 * True for errors of a database that is down, restarting or unreachable (SQLSTATE classes 08,
 * 57P01-03, 53300, and the socket errors of a lost connection): worth retrying once it is back,
 * unlike a constraint violation or a bad query.
 */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string")
    return error instanceof Error && /connect|terminat/i.test(error.message);
  return (
    code.startsWith("08") || // connection exception
    code === "57P01" || // admin_shutdown
    code === "57P02" || // crash_shutdown
    code === "57P03" || // cannot_connect_now
    code === "53300" || // too_many_connections
    ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND"].includes(code)
  );
}
