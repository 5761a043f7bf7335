import semver from "semver";

/** The parts of a semantic version the registry stores to order versions in SQL. */
export interface VersionOrder {
  major: number;
  minor: number;
  patch: number;
  /** Pre-release identifiers joined by dots, as written; "" for a release. */
  prerelease: string;
  /**
   * One string per pre-release identifier whose byte order is semver precedence (compare with
   * collation "C"); empty for a release, which the `is_release` column ranks above.
   */
  prereleaseKey: string[];
}

const numeric = /^\d+$/;

/**
 * Numeric identifiers rank below alphanumeric ones and compare by value; semver forbids
 * leading zeros, so length then digits is value order. Alphanumerics compare in ASCII order.
 */
function identifierKey(identifier: string): string {
  return numeric.test(identifier)
    ? `0${String(identifier.length).padStart(3, "0")}${identifier}`
    : `1${identifier}`;
}

/**
 * True when `version` is a semantic version written in canonical form (`1.2.0`, `2.0.0-rc.1`),
 * which is what the registry accepts: no `v` prefix, no build metadata (semver ignores it for
 * precedence, so `1.0.0+a` and `1.0.0+b` could not be told apart).
 */
export function isCanonicalVersion(version: string): boolean {
  return semver.valid(version) === version;
}

/**
 * Splits a canonical semantic version into its ordering parts.
 * @throws TypeError when `version` is not canonical (see {@link isCanonicalVersion})
 */
export function versionOrder(version: string): VersionOrder {
  const parsed = isCanonicalVersion(version) ? semver.parse(version) : null;
  if (parsed === null) throw new TypeError(`not a canonical semantic version: ${version}`);
  const identifiers = parsed.prerelease.map(String);
  return {
    major: parsed.major,
    minor: parsed.minor,
    patch: parsed.patch,
    prerelease: identifiers.join("."),
    prereleaseKey: identifiers.map(identifierKey),
  };
}
