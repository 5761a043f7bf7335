import assert from "node:assert/strict";
import { describe, test } from "vitest";
import { PackValidationError } from "./diagnostic.ts";
import { defaultPackLimits } from "./limits.ts";
import { parseYamlSource } from "./yaml-source.ts";

/** Asserts that parsing fails with `code` and a message matching `pattern`, without hanging. */
function rejects(text: string, code: string, pattern: RegExp): void {
  const started = performance.now();
  assert.throws(
    () => parseYamlSource(text, defaultPackLimits),
    (error: unknown) => {
      assert.ok(
        error instanceof PackValidationError,
        `expected PackValidationError, got ${String(error)}`,
      );
      assert.equal(error.diagnostics[0]?.code, code);
      assert.match(error.diagnostics[0]?.message ?? "", pattern);
      return true;
    },
  );
  // A generous bound: this guards against hangs and blow-ups, not a performance claim.
  assert.ok(performance.now() - started < 2000, "rejection took too long");
}

const header = "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\n";

describe("hostile manifests are rejected with a clear error", () => {
  test("oversize input", () => {
    rejects(
      `${header}x: "${"a".repeat(11 * 1024 * 1024)}"\n`,
      "PACK_TOO_LARGE",
      /bytes; the limit is 524288/,
    );
  });

  test("alias bomb (billion laughs)", () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [name, prev] of [
      ["b", "a"],
      ["c", "b"],
      ["d", "c"],
      ["e", "d"],
      ["f", "e"],
      ["g", "f"],
      ["h", "g"],
    ]) {
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]`);
    }
    rejects(`${lines.join("\n")}\n`, "PACK_YAML_UNSAFE", /too many alias expansions/);
  });

  test("100,000-deep flow nesting is refused before parsing", () => {
    rejects(
      `a: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`,
      "PACK_LIMIT",
      /nest deeper than 64/,
    );
  });

  test("deep block nesting", () => {
    let text = "";
    for (let depth = 0; depth < 80; depth++) text += `${"  ".repeat(depth)}k${depth}:\n`;
    rejects(`${text}${"  ".repeat(80)}leaf: 1\n`, "PACK_LIMIT", /nest deeper than 64/);
  });

  test("600-deep block nesting is refused before parsing, quickly", () => {
    let text = "";
    for (let depth = 0; depth < 600; depth++) text += `${" ".repeat(depth)}k:\n`;
    const started = performance.now();
    rejects(`${text}${" ".repeat(600)}leaf: 1\n`, "PACK_LIMIT", /nest deeper than 64/);
    assert.ok(performance.now() - started < 50, `${Math.round(performance.now() - started)} ms`);
  });

  test("deeply indented block scalar content is not nesting", () => {
    const script = Array.from({ length: 100 }, (_, i) => `${" ".repeat(12 + i)}echo ${i}`);
    const text = `${header}metadata: {name: indented, version: 1.0.0}\nspec:\n  steps:\n    - id: a\n      run:\n        uses: builtin:shell\n        with:\n          script: |\n${script.join("\n")}\n    - id: b\n      run: {uses: builtin:noop}\n`;
    assert.doesNotThrow(() => parseYamlSource(text, defaultPackLimits));
  });

  test("10,000 steps are refused before parsing", () => {
    let text = `${header}metadata: {name: big, version: 1.0.0}\nspec:\n  steps:\n`;
    for (let i = 0; i < 10_000; i++) text += `    - {id: s${i}, run: {uses: builtin:noop}}\n`;
    rejects(text, "PACK_LIMIT", /more than 2000 steps/);
  });

  test("duplicate keys, with the line of the duplicate", () => {
    assert.throws(
      () => parseYamlSource(`${header}kind: Other\n`, defaultPackLimits),
      (error: PackValidationError) => {
        assert.equal(error.diagnostics[0]?.code, "PACK_YAML_SYNTAX");
        assert.match(error.message, /duplicate key/);
        assert.equal(error.diagnostics[0]?.line, 3);
        return true;
      },
    );
  });

  for (const key of ["__proto__", "constructor", "prototype"]) {
    test(`the key ${key}`, () => {
      rejects(
        `${header}metadata:\n  ${key}: {polluted: true}\n`,
        "PACK_YAML_UNSAFE",
        new RegExp(`"${key}" is not allowed`),
      );
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });
  }

  test("raw NUL and other control characters, located", () => {
    assert.throws(
      () => parseYamlSource(`${header}metadata:\n  name: "a\u0000b"\n`, defaultPackLimits),
      (error: PackValidationError) => {
        assert.match(error.message, /control character U\+0000/);
        assert.deepEqual([error.diagnostics[0]?.line, error.diagnostics[0]?.column], [4, 11]);
        return true;
      },
    );
    rejects(`${header}x: "\u001b[31m"\n`, "PACK_YAML_UNSAFE", /U\+001b/);
  });

  test("syntax errors carry a position", () => {
    assert.throws(
      () => parseYamlSource(`${header}spec: [unclosed\n`, defaultPackLimits),
      (error: PackValidationError) => {
        assert.equal(error.diagnostics[0]?.code, "PACK_YAML_SYNTAX");
        assert.ok((error.diagnostics[0]?.line ?? 0) >= 3);
        return true;
      },
    );
  });

  test("complex mapping keys", () => {
    rejects(`${header}? [a, b]\n: 1\n`, "PACK_YAML_UNSAFE", /plain scalars/);
  });
});

describe("locate", () => {
  test("finds nodes and falls back to the nearest ancestor", () => {
    const source = parseYamlSource(
      `${header}spec:\n  steps:\n    - id: a\n      run: {uses: builtin:noop}\n`,
      defaultPackLimits,
    );
    assert.deepEqual(source.locate(["spec", "steps", 0, "id"]), { line: 5, column: 11 });
    assert.deepEqual(source.locate(["spec", "steps", 0, "missing"]), { line: 5, column: 7 });
    assert.match(source.digest, /^sha256:[0-9a-f]{64}$/);
  });

  test("a legitimate anchor and alias is fine", () => {
    const source = parseYamlSource(`${header}defaults: &d {a: 1}\nuse: *d\n`, defaultPackLimits);
    assert.deepEqual((source.value as Record<string, unknown>).use, { a: 1 });
  });
});
