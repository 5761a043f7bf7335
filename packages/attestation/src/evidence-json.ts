import { canonicalJson, sha256Digest } from "@packrun/planning";

/** Any JSON value. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** `sha256:<hex>` of the RFC 8785 canonical JSON of `value`: how input and output values are digested. */
export function digestJson(value: unknown): string {
  return sha256Digest(canonicalJson(value));
}

/**
 * The deterministic, human-readable JSON of a bundle member: RFC 8785 member order, two-space
 * indent, final newline. Same value, same bytes, on every machine.
 */
export function evidenceJson(value: unknown): string {
  return `${JSON.stringify(JSON.parse(canonicalJson(value)), null, 2)}\n`;
}
