import { createHash } from "node:crypto";

/**
 * What makes an approval token single-use: its `jti`, or, for an identity provider that sets
 * none, the SHA-256 of the token itself (a replay sends the very same text).
 */
export function approvalTokenId(
  jti: string | undefined,
  authorization: string | undefined,
): string {
  if (jti !== undefined && jti !== "") return `jti:${jti}`;
  const token = (authorization ?? "").replace(/^Bearer\s+/i, "");
  return `sha256:${createHash("sha256").update(token).digest("hex")}`;
}
