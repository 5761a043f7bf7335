import assert from "node:assert/strict";
import { test } from "vitest";
import { loadManifest } from "./build-plan.ts";
import { formatDiagnostic, PackValidationError } from "./diagnostic.ts";
import { EgressRuleError, parseEgressRule } from "./egress-rule.ts";

test("allowlist entries: hosts, addresses and CIDR ranges, each with an optional port", () => {
  assert.deepEqual(parseEgressRule("registry.npmjs.org:443"), {
    kind: "host",
    host: "registry.npmjs.org",
    port: 443,
  });
  assert.deepEqual(parseEgressRule("Example.COM"), {
    kind: "host",
    host: "example.com",
    port: null,
  });
  assert.deepEqual(parseEgressRule("10.1.2.3"), {
    kind: "cidr",
    address: "10.1.2.3",
    prefix: 32,
    port: null,
  });
  assert.deepEqual(parseEgressRule("10.0.0.0/8:5432"), {
    kind: "cidr",
    address: "10.0.0.0",
    prefix: 8,
    port: 5432,
  });
});

test("malformed entries are refused with the entry and what is wrong", () => {
  for (const [entry, problem] of [
    ["10.0.0.0/40", /prefix length must be 0 to 32/],
    ["host:0", /port must be a number from 1 to 65535/],
    ["host:99999", /port must be a number from 1 to 65535/],
    ["[::1]:443", /expected a host name|only IPv4/],
    ["::1", /only IPv4|expected a host name/],
    ["bad_host!", /expected a host name/],
    ["", /expected a host name/],
  ] as const) {
    assert.throws(
      () => parseEgressRule(entry),
      (error: unknown) => error instanceof EgressRuleError && problem.test(error.message),
      entry,
    );
  }
});

test("the planner names a malformed allowlist entry by its path and line", () => {
  const source = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: egress, version: 1.0.0}
spec:
  sandbox:
    mode: open
    egressAllowlist: [registry.npmjs.org:443, 10.0.0.0/40]
  steps: [{id: a, run: {uses: builtin:noop}}]
`;
  assert.throws(
    () => loadManifest(source),
    (error: unknown) =>
      error instanceof PackValidationError &&
      error.diagnostics
        .map(formatDiagnostic)
        .some((line) =>
          /^spec\.sandbox\.egressAllowlist\[1\] \(line 7:\d+\): "10\.0\.0\.0\/40": the prefix length must be 0 to 32/.test(
            line,
          ),
        ),
  );
});
