import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

/** RFC 8785 (JCS) canonical JSON of a plan: the exact text that is hashed and stored. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("value has no JSON representation");
  return text;
}

/** `sha256:` + lowercase hex SHA-256 of the canonical JSON text (UTF-8). */
export function sha256Digest(text: string): string {
  return `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;
}

/** The plan hash: {@link sha256Digest} of {@link canonicalJson}. Identical on every machine. */
export function computePlanHash(plan: unknown): string {
  return sha256Digest(canonicalJson(plan));
}
