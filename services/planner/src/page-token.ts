import { PackrunError } from "@packrun/errors";

/**
 * Where the next page of a keyset-paginated listing starts. `scope` names the listing (e.g.
 * `packs` plus tenant) so a token is refused by any other listing; `after` is the last key
 * returned.
 */
export interface PageCursor {
  scope: string;
  after: string;
}

/** Page size when the request leaves it 0. */
export const defaultPageSize = 50;
/** Larger requested page sizes are reduced to this. */
export const maxPageSize = 500;

/** The effective page size of a request: 0 means the default, anything above the cap is capped. */
export function pageSize(requested: number): number {
  if (requested === 0) return defaultPageSize;
  return Math.min(requested, maxPageSize);
}

/** Encodes a cursor as an opaque, URL-safe token. Callers must not parse it. */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify({ v: 1, s: cursor.scope, a: cursor.after }), "utf8").toString(
    "base64url",
  );
}

/**
 * Decodes a token made by {@link encodePageToken} for the listing `scope`; "" (first page)
 * gives undefined.
 * @throws PackrunError REQUEST_INVALID for a malformed token or one from another listing
 */
export function decodePageToken(token: string, scope: string): string | undefined {
  if (token === "") return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    decoded = undefined;
  }
  const fields = decoded as { v?: unknown; s?: unknown; a?: unknown } | null | undefined;
  if (
    typeof fields !== "object" ||
    fields === null ||
    fields.v !== 1 ||
    typeof fields.s !== "string" ||
    typeof fields.a !== "string" ||
    // Keys this service issues never hold NUL; a forged one would fail in PostgreSQL as a 500.
    fields.a.includes("\u0000")
  ) {
    throw new PackrunError(
      "REQUEST_INVALID",
      "pageToken (page_token) is not a token this service issued",
    );
  }
  if (fields.s !== scope) {
    throw new PackrunError(
      "REQUEST_INVALID",
      "pageToken (page_token) belongs to a different listing; pass it only with the request that returned it",
    );
  }
  return fields.a;
}
