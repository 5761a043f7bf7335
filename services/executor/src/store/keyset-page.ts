import { PackrunError } from "@packrun/errors";

/** Where a newest-first listing continues: the (created_at, id) of the last row shown. */
export interface PagePosition {
  createdAt: string;
  id: string;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/**
 * Reads a page token this service issued. Checked fully here: a forged timestamp or id would
 * otherwise reach PostgreSQL's casts and fail there as an internal error.
 * @throws PackrunError REQUEST_INVALID for anything else
 */
export function decodePageToken(token: string): PagePosition {
  try {
    const value = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (
      typeof value?.createdAt === "string" &&
      typeof value?.id === "string" &&
      isoTime.test(value.createdAt) &&
      !Number.isNaN(Date.parse(value.createdAt)) &&
      uuid.test(value.id)
    )
      return { createdAt: value.createdAt, id: value.id };
  } catch {}
  throw new PackrunError(
    "REQUEST_INVALID",
    "pageToken (page_token) is not a token this service issued",
  );
}

/**
 * One page of a newest-first keyset listing queried with `LIMIT size + 1`: the first `size`
 * rows, and the token of the next page when there was one more row.
 */
export function keysetPage<Row extends { created_at: Date; id: string }>(
  rows: readonly Row[],
  size: number,
): { page: Row[]; nextPageToken: string } {
  const page = rows.slice(0, size);
  const last = page.at(-1);
  const position: PagePosition | undefined =
    rows.length > size && last !== undefined
      ? { createdAt: last.created_at.toISOString(), id: last.id }
      : undefined;
  return {
    page,
    nextPageToken:
      position === undefined ? "" : Buffer.from(JSON.stringify(position)).toString("base64url"),
  };
}
