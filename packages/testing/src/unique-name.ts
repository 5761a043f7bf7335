import { randomBytes } from "node:crypto";

let counter = 0;

/**
 * A name unique across the test processes of a run: `<prefix>_<pid>_<n>_<random>`, lowercase
 * `[a-z0-9_]` only, at most `maxLength` characters (the prefix is shortened to fit).
 * @param prefix a readable hint; other characters are replaced by `_`
 * @param maxLength PostgreSQL identifiers are limited to 63 bytes
 */
export function uniqueName(prefix: string, maxLength = 63): string {
  counter += 1;
  const suffix = `_${process.pid}_${counter}_${randomBytes(4).toString("hex")}`;
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]+/g, "_") || "test";
  return `${clean.slice(0, Math.max(1, maxLength - suffix.length))}${suffix}`;
}
