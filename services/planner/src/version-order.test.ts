import assert from "node:assert/strict";
import semver from "semver";
import { test } from "vitest";
import { isCanonicalVersion, versionOrder } from "./version-order.ts";

// Byte-wise comparison, as collation "C" compares in SQL.
function compareKeys(a: string[], b: string[]): number {
  for (let index = 0; index < Math.min(a.length, b.length); index++) {
    const left = Buffer.from(a[index] ?? "");
    const right = Buffer.from(b[index] ?? "");
    const order = Buffer.compare(left, right);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

test("pre-release keys order exactly as semver precedence", () => {
  const versions = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0-10.a",
    "1.0.0-Z",
    "1.0.0-a-b",
    "1.0.0-123456789012345678901234567890",
  ];
  const byKey = [...versions].sort((a, b) =>
    compareKeys(versionOrder(a).prereleaseKey, versionOrder(b).prereleaseKey),
  );
  assert.deepEqual(byKey, [...versions].sort(semver.compare));
});

test("only canonical versions are accepted", () => {
  for (const version of ["1.0.0", "0.0.1", "2.0.0-rc.1", "10.20.30-a.b.c"]) {
    assert.equal(isCanonicalVersion(version), true, version);
  }
  for (const version of ["v1.0.0", "=1.0.0", "1.0.0+build", "1.0", "01.0.0", "1.0.0-01", ""]) {
    assert.equal(isCanonicalVersion(version), false, version);
  }
  assert.deepEqual(versionOrder("3.2.1-rc.10"), {
    major: 3,
    minor: 2,
    patch: 1,
    prerelease: "rc.10",
    prereleaseKey: ["1rc", "000210"],
  });
  assert.throws(() => versionOrder("v1.0.0"), TypeError);
});
