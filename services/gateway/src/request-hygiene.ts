import type { Socket } from "node:net";
import { type ErrorCode, PackrunError } from "@packrun/errors";
import { problem, problemContentType } from "./problem-details.ts";

/** Nesting below which {@link findNulCharacter} looks; deeper bodies are refused elsewhere. */
const MAX_WALK_DEPTH = 256;

/**
 * The path (`body/inputs/who`, as validation errors name fields) of the first string or key
 * holding U+0000 in a parsed request part, or null. PostgreSQL text and jsonb cannot store NUL,
 * environment variables and argv cannot carry it, so it would otherwise fail deep inside a
 * service as a 500. Manifest text (`body/manifest`) is left to the planner, whose error locates
 * the character.
 */
export function findNulCharacter(value: unknown, at: string, depth = 0): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? at : null;
  if (value === null || typeof value !== "object" || depth > MAX_WALK_DEPTH) return null;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = findNulCharacter(value[index], `${at}/${index}`, depth + 1);
      if (found !== null) return found;
    }
    return null;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.includes("\u0000")) return `${at} (a field name)`;
    // The planner refuses control characters in manifest text itself, with line and column.
    if (at === "body" && key === "manifest" && typeof item === "string") continue;
    const found = findNulCharacter(item, `${at}/${key}`, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/** Throws REQUEST_INVALID naming the field when any part of the request holds U+0000. */
export function assertNoNulCharacters(parts: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(parts)) {
    const found = findNulCharacter(value, name);
    if (found === null) continue;
    const message = "contains U+0000 (NUL), which packrun does not accept in any text";
    throw new PackrunError("REQUEST_INVALID", `${found}: ${message}`, {
      details: { diagnostics: [{ path: found, message }] },
    });
  }
}

/**
 * Answers HTTP errors Node detects before Fastify sees a request (headers too large, malformed
 * requests, timeouts) with a problem document like every other error, instead of Fastify's
 * default plain JSON.
 */
export function problemClientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  let status: number;
  let code: ErrorCode;
  let detail: string;
  if (error.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    code = "REQUEST_HEADERS_TOO_LARGE";
    detail =
      "the request headers exceed the server's limit (16 KiB by default); an oversized bearer token?";
  } else if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    code = "REQUEST_INVALID";
    detail = "the request was not received in time";
  } else {
    status = 400;
    code = "REQUEST_INVALID";
    detail = "the request is not valid HTTP";
  }
  const body = JSON.stringify({ ...problem(code, detail), status });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${statusText(status)}\r\nConnection: close\r\nContent-Type: ${problemContentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

function statusText(status: number): string {
  if (status === 431) return "Request Header Fields Too Large";
  if (status === 408) return "Request Timeout";
  return "Bad Request";
}
