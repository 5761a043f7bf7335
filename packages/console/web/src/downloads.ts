import { request } from "./api.ts";

/** SHA-256 of bytes as `sha256:<hex>`. */
export async function sha256(bytes: ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/** What a verified download was. */
export interface Downloaded {
  readonly digest: string;
  readonly expected: string | undefined;
  readonly bytes: number;
}

/**
 * Downloads an API file with the bearer token (a plain link could not send it), checks its
 * SHA-256 against the one expected (the artifact's digest, or the bundle's ETag) and saves it.
 */
export async function downloadVerified(
  path: string,
  filename: string,
  expected?: string,
): Promise<Downloaded> {
  const response = await request(path);
  const etag = response.headers.get("etag")?.replace(/"/g, "");
  const body = await response.arrayBuffer();
  const digest = await sha256(body);
  const want = expected ?? etag;
  if (want !== undefined && want !== digest)
    throw new Error(`the download's digest ${digest} is not the expected ${want}`);
  const url = URL.createObjectURL(new Blob([body]));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { digest, expected: want, bytes: body.byteLength };
}
