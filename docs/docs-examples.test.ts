/**
 * Runs the examples in docs/*.md as tests, so the reference cannot drift from the code.
 *
 * Fenced blocks are recognised by their info string:
 *
 *   ```yaml pack [name=<id>]          a complete manifest that must plan (and simulate).
 *   ```yaml pack-invalid [name=<id>]  a manifest that must be rejected.
 *   ```json golden                    a plan-hash golden vector.
 *
 * A manifest block may start with comment directives, one per line:
 *   # inputs: {"name": "value"}       input values (JSON), default {}
 *   # secrets: ["token"]              secret names supplied (PlanOptions.suppliedSecretNames)
 *   # error: <text>                   pack-invalid only (required): a diagnostic contains <text>
 *   # code: <ERROR_CODE>              pack-invalid only: a diagnostic has this code
 *
 * A golden vector is {"manifest": "<name of a yaml pack block in the same file>"} or
 * {"manifestFile": "<repo-relative path>"}, with "inputs" (JSON) or "inputsFile", "planHash", and
 * optionally "planJson" (the exact canonical plan text).
 *
 * Besides the blocks, this checks that the tables in the docs match the code they describe
 * (limits, modules, error codes), that docs/task-pack.schema.json is the published schema and that
 * relative links and their #anchors resolve. A block can be kept verbatim (not reformatted by
 * Biome) with `<!-- biome-ignore format: <reason> -->` on the line before it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Code } from "@connectrpc/connect";
import { errorCatalog, isPackrunError } from "@packrun/errors";
import {
  defaultPackLimits,
  formatDiagnostic,
  manifestSchema,
  moduleCatalog,
  PackValidationError,
  type PlanOptions,
  planPack,
  simulatePlan,
} from "@packrun/planning";
import { describe, test } from "vitest";

const docsDir = import.meta.dirname;
const root = path.resolve(docsDir, "..");

interface Block {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  info: string[];
  text: string;
}

/** Every fenced code block of a Markdown file, with its info string split into words. */
function fencedBlocks(file: string): Block[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const blocks: Block[] = [];
  let open: { fence: string; line: number; info: string[]; body: string[] } | undefined;
  lines.forEach((line, index) => {
    if (open === undefined) {
      const start = /^(`{3,}|~{3,})\s*(.*)$/.exec(line);
      if (start !== null) {
        open = {
          fence: start[1] as string,
          line: index + 1,
          info: (start[2] ?? "").trim().split(/\s+/).filter(Boolean),
          body: [],
        };
      }
      return;
    }
    if (line.startsWith(open.fence) && line.slice(open.fence.length).trim() === "") {
      blocks.push({
        file: path.relative(root, file),
        line: open.line,
        info: open.info,
        text: `${open.body.join("\n")}\n`,
      });
      open = undefined;
      return;
    }
    open.body.push(line);
  });
  assert.equal(open, undefined, `${file}: unclosed code fence opened at line ${open?.line}`);
  return blocks;
}

interface Directives {
  inputs: Record<string, unknown>;
  secrets: string[] | undefined;
  error: string | undefined;
  code: string | undefined;
}

const directiveNames = new Set(["inputs", "secrets", "error", "code"]);

/** The `# name: value` comment lines at the top of a manifest block. */
function directives(block: Block): Directives {
  const found: Directives = { inputs: {}, secrets: undefined, error: undefined, code: undefined };
  for (const line of block.text.split("\n")) {
    const match = /^#\s*([a-z]+):\s?(.*)$/.exec(line);
    if (match === null || !directiveNames.has(match[1] as string)) break;
    const [, name, value = ""] = match;
    if (name === "inputs") found.inputs = JSON.parse(value) as Record<string, unknown>;
    else if (name === "secrets") found.secrets = JSON.parse(value) as string[];
    else if (name === "error") found.error = value.trim();
    else if (name === "code") found.code = value.trim();
  }
  return found;
}

function options(found: Directives): PlanOptions {
  return found.secrets === undefined
    ? { inputs: found.inputs }
    : { inputs: found.inputs, suppliedSecretNames: found.secrets };
}

const where = (block: Block) => `${block.file}:${block.line}`;
const nameOf = (block: Block) =>
  block.info.find((word) => word.startsWith("name="))?.slice("name=".length);

const markdownFiles = readdirSync(docsDir)
  .filter((name) => name.endsWith(".md"))
  .sort()
  .map((name) => path.join(docsDir, name));
const allBlocks = markdownFiles.flatMap(fencedBlocks);
const manifestBlocks = allBlocks.filter(
  (block) =>
    block.info[0] === "yaml" && (block.info[1] === "pack" || block.info[1] === "pack-invalid"),
);
const goldenBlocks = allBlocks.filter(
  (block) => block.info[0] === "json" && block.info[1] === "golden",
);

test("the docs exist and hold runnable examples", () => {
  const names = markdownFiles.map((file) => path.basename(file));
  for (const required of [
    "task-pack-format.md",
    "expressions.md",
    "planning.md",
    "glossary.md",
    "errors.md",
  ]) {
    assert.ok(names.includes(required), `docs/${required} is missing`);
  }
  assert.ok(
    manifestBlocks.filter((block) => block.info[1] === "pack").length >= 15,
    "too few `yaml pack` examples",
  );
  assert.ok(
    manifestBlocks.filter((block) => block.info[1] === "pack-invalid").length >= 15,
    "too few `yaml pack-invalid` examples",
  );
  assert.ok(goldenBlocks.length >= 3, "planning.md needs at least three golden vectors");
});

test("every manifest-looking block is marked as a runnable example", () => {
  for (const block of allBlocks) {
    const words = block.info.slice(1);
    if (block.info[0] === "yaml") {
      const kind = words.filter((word) => !word.startsWith("name="));
      assert.ok(
        kind.length === 0 ||
          (kind.length === 1 && ["pack", "pack-invalid"].includes(kind[0] as string)),
        `${where(block)}: unknown info string "${block.info.join(" ")}"`,
      );
      if (kind.length === 0) {
        assert.doesNotMatch(
          block.text,
          /apiVersion:\s*stellaops\.io/,
          `${where(block)}: a complete manifest must be marked \`yaml pack\` or \`yaml pack-invalid\``,
        );
      }
    }
    if (block.info[0] === "json" && words.length > 0) {
      assert.deepEqual(
        words,
        ["golden"],
        `${where(block)}: unknown info string "${block.info.join(" ")}"`,
      );
    }
  }
  const names = manifestBlocks.map(nameOf).filter((name) => name !== undefined);
  assert.equal(new Set(names).size, names.length, "block names must be unique");
});

describe("yaml pack examples plan and simulate", () => {
  for (const block of manifestBlocks.filter((candidate) => candidate.info[1] === "pack")) {
    test(where(block), () => {
      const found = directives(block);
      assert.equal(
        found.error,
        undefined,
        `${where(block)}: \`# error:\` belongs to pack-invalid blocks`,
      );
      let result: ReturnType<typeof planPack>;
      try {
        result = planPack(block.text, options(found));
      } catch (error) {
        assert.fail(
          `${where(block)} does not plan: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      assert.match(result.planHash, /^sha256:[0-9a-f]{64}$/);
      assert.equal(
        planPack(block.text, options(found)).planHash,
        result.planHash,
        "the plan hash is stable",
      );
      const simulation = simulatePlan(result);
      assert.equal(simulation.planHash, result.planHash);
    });
  }
});

describe("yaml pack-invalid examples are rejected with the documented error", () => {
  for (const block of manifestBlocks.filter((candidate) => candidate.info[1] === "pack-invalid")) {
    test(where(block), () => {
      const found = directives(block);
      assert.ok(
        found.error !== undefined && found.error !== "",
        `${where(block)}: a pack-invalid block starts with \`# error: <text>\``,
      );
      let caught: unknown;
      try {
        planPack(block.text, options(found));
      } catch (error) {
        caught = error;
      }
      assert.ok(
        caught !== undefined,
        `${where(block)} planned, but it is documented to fail with "${found.error}"`,
      );
      assert.ok(
        isPackrunError(caught),
        `${where(block)} failed with a non-packrun error: ${String(caught)}`,
      );
      assert.ok(
        caught instanceof PackValidationError,
        `${where(block)}: expected a PackValidationError, got ${caught.code}`,
      );
      const lines = caught.diagnostics.map(formatDiagnostic);
      assert.ok(
        lines.some((line) => line.includes(found.error as string)),
        `${where(block)}: no diagnostic contains "${found.error}"; got:\n  ${lines.join("\n  ")}`,
      );
      if (found.code !== undefined) {
        assert.ok(
          caught.diagnostics.some((diagnostic) => diagnostic.code === found.code),
          `${where(block)}: no diagnostic has code ${found.code}; got ${caught.diagnostics.map((d) => d.code).join(", ")}`,
        );
      }
    });
  }
});

interface GoldenVector {
  manifest?: string;
  manifestFile?: string;
  inputs?: Record<string, unknown>;
  inputsFile?: string;
  planHash: string;
  planJson?: string;
}

describe("golden vectors reproduce exactly", () => {
  const computed: { text: string; inputs: string; hash: string }[] = [];
  for (const block of goldenBlocks) {
    test(where(block), () => {
      const vector = JSON.parse(block.text) as GoldenVector;
      let text: string;
      if (vector.manifest !== undefined) {
        const source = manifestBlocks.find(
          (candidate) => candidate.file === block.file && nameOf(candidate) === vector.manifest,
        );
        assert.ok(
          source !== undefined,
          `${where(block)}: no block named ${vector.manifest} in ${block.file}`,
        );
        assert.equal(source.info[1], "pack");
        text = source.text;
      } else {
        assert.ok(
          vector.manifestFile !== undefined,
          `${where(block)}: a vector names manifest or manifestFile`,
        );
        text = readFileSync(path.join(root, vector.manifestFile), "utf8");
      }
      const inputs =
        vector.inputsFile === undefined
          ? (vector.inputs ?? {})
          : (JSON.parse(readFileSync(path.join(root, vector.inputsFile), "utf8")) as Record<
              string,
              unknown
            >);
      const result = planPack(text, { inputs });
      assert.equal(
        result.planHash,
        vector.planHash,
        `${where(block)}: the plan hash is now ${result.planHash}; if the plan changed on purpose, update the vector`,
      );
      // The definition, independently of the library: sha256 over the canonical text.
      assert.equal(
        `sha256:${createHash("sha256").update(result.planJson, "utf8").digest("hex")}`,
        vector.planHash,
      );
      if (vector.planJson !== undefined)
        assert.equal(
          result.planJson,
          vector.planJson,
          `${where(block)}: the canonical plan changed`,
        );
      computed.push({ text, inputs: JSON.stringify(inputs), hash: result.planHash });
    });
  }
  test("the vectors show that formatting does not matter and meaning does", () => {
    const sameHashDifferentText = computed.some((a) =>
      computed.some((b) => a.hash === b.hash && a.text !== b.text),
    );
    const differentHash = new Set(computed.map((vector) => vector.hash)).size > 1;
    assert.ok(
      sameHashDifferentText,
      "a vector must show that reformatting a manifest keeps its hash",
    );
    assert.ok(differentHash, "a vector must show that a semantic change changes the hash");
  });
});

/** Rows of the Markdown tables in `file` whose first cell is a backticked name. */
function tableRows(file: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of readFileSync(path.join(docsDir, file), "utf8").split("\n")) {
    const match = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (match === null) continue;
    rows.set(
      match[1] as string,
      (match[2] as string).split("|").map((cell) => cell.trim()),
    );
  }
  return rows;
}

test("the limits table matches defaultPackLimits", () => {
  const rows = tableRows("task-pack-format.md");
  for (const [name, value] of Object.entries(defaultPackLimits)) {
    const row = rows.get(name);
    assert.ok(row !== undefined, `task-pack-format.md does not list the limit ${name}`);
    assert.equal(row[0], String(value), `limit ${name}`);
  }
});

test("every builtin module and each of its parameters is documented", () => {
  const text = readFileSync(path.join(docsDir, "task-pack-format.md"), "utf8");
  for (const [name, entry] of Object.entries(moduleCatalog)) {
    const heading = text.indexOf(`#### \`${name}\``);
    assert.ok(heading !== -1, `task-pack-format.md has no section for ${name}`);
    const section = text.slice(heading, text.indexOf("\n#### ", heading + 1));
    for (const parameter of Object.keys(entry.schema.properties)) {
      assert.ok(
        section.includes(`| \`${parameter}\``),
        `${name}: parameter ${parameter} is not in its table`,
      );
    }
  }
});

test("errors.md lists every error code exactly as catalogued", () => {
  const rows = tableRows("errors.md");
  for (const [code, info] of Object.entries(errorCatalog)) {
    const row = rows.get(code);
    assert.ok(row !== undefined, `errors.md does not list ${code}`);
    const [connect = "", http = "", exit = ""] = row;
    assert.ok(
      connect.includes(`(${info.connect})`),
      `${code}: Connect code should be ${Code[info.connect]} (${info.connect}), docs say ${connect}`,
    );
    assert.equal(http, String(info.http), `${code}: HTTP status`);
    assert.equal(exit, String(info.exit), `${code}: CLI exit code`);
  }
  const documented = [...rows.keys()].filter((name) => /^[A-Z][A-Z_]+$/.test(name));
  for (const code of documented)
    assert.ok(
      Object.hasOwn(errorCatalog, code),
      `errors.md lists ${code}, which is not in the catalog`,
    );
});

test("docs/task-pack.schema.json is the manifest schema", () => {
  const published = JSON.parse(
    readFileSync(path.join(docsDir, "task-pack.schema.json"), "utf8"),
  ) as unknown;
  assert.deepEqual(published, JSON.parse(JSON.stringify(manifestSchema)));
});

test("relative links in the docs resolve", () => {
  for (const file of markdownFiles) {
    // Links outside code: drop fenced blocks and inline code spans first.
    const text = readFileSync(file, "utf8")
      .replace(/^(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1[ \t]*$/gm, "")
      .replace(/`[^`\n]*`/g, "");
    for (const match of text.matchAll(/\]\(([^)\s#]+)(#[^)]*)?\)/g)) {
      const target = match[1] as string;
      if (/^[a-z]+:/.test(target)) continue;
      const resolved = path.resolve(path.dirname(file), target);
      assert.ok(
        existsSync(resolved),
        `${path.relative(root, file)} links to ${target}, which does not exist`,
      );
      const anchor = match[2]?.slice(1);
      if (anchor !== undefined && resolved.endsWith(".md")) {
        assert.ok(
          anchors(resolved).has(anchor),
          `${path.relative(root, file)} links to ${target}#${anchor}, which has no such heading`,
        );
      }
    }
    for (const match of text.matchAll(/\]\(#([^)]+)\)/g)) {
      assert.ok(
        anchors(file).has(match[1] as string),
        `${path.relative(root, file)} links to #${match[1]}, which has no such heading`,
      );
    }
  }
});

/** GitHub-style anchors of a Markdown file's headings. */
function anchors(file: string): Set<string> {
  const found = new Set<string>();
  for (const line of readFileSync(file, "utf8")
    .replace(/^```[\s\S]*?^```$/gm, "")
    .split("\n")) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading === null) continue;
    found.add(
      (heading[1] as string)
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, "")
        .replace(/\s/g, "-"),
    );
  }
  return found;
}
