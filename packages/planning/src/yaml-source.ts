import { createHash } from "node:crypto";
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from "yaml";
import {
  type DocumentPath,
  formatPath,
  PackValidationError,
  type SourcePosition,
} from "./diagnostic.ts";
import type { PackLimits } from "./limits.ts";

/** A parsed YAML document that can say where any value of it came from. */
export interface YamlSource {
  /** The document as plain JSON-compatible data. */
  readonly value: unknown;
  /** `sha256:<hex>` of the exact bytes parsed. */
  readonly digest: string;
  /**
   * Position of the node at `path`, or of its nearest existing ancestor. With `key`, the
   * position of the mapping key itself (for "unknown field" errors).
   */
  locate(path: DocumentPath, options?: { key?: boolean }): SourcePosition;
}

/** Keys that could pollute prototypes, and `$runtime`, which marks run-time values in plans. */
const forbiddenKeys = new Set(["__proto__", "constructor", "prototype", "$runtime"]);

/** The only tags a manifest may carry: the YAML 1.2 core schema's (no binary, set, timestamp…). */
const allowedTags = new Set(
  ["str", "int", "float", "bool", "null", "map", "seq"].map((tag) => `tag:yaml.org,2002:${tag}`),
);

// Bidirectional controls can make reviewed text differ from what runs ("Trojan Source").
const bidiControls = /[\u202a-\u202e\u2066-\u2069]/;

function fail(
  code: "PACK_TOO_LARGE" | "PACK_YAML_SYNTAX" | "PACK_YAML_UNSAFE" | "PACK_LIMIT",
  position: SourcePosition,
  message: string,
  path = "",
): never {
  throw new PackValidationError([{ code, path, ...position, message }]);
}

function positionAt(text: string, offset: number): SourcePosition {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Linear checks that run before the YAML parser, so hostile input is refused in well under a
 * millisecond per kilobyte instead of being parsed: characters YAML forbids (C0 controls but
 * tab, LF and CR; DEL; C1 controls but NEL), flow nesting deeper than the limit, and more
 * `id:` keys than the step limit allows (an upper bound on the number of steps).
 */
function prescan(text: string, limits: PackLimits): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
  const control = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u0080-\u0084\u0086-\u009f\ufeff]/;
  const bad = control.exec(text);
  if (bad !== null && !(bad[0] === "\ufeff" && bad.index === 0)) {
    const code = bad[0].codePointAt(0)?.toString(16).padStart(4, "0") ?? "?";
    fail(
      "PACK_YAML_UNSAFE",
      positionAt(text, bad.index),
      `control character U+${code} is not allowed in a manifest`,
    );
  }
  const bidi = bidiControls.exec(text);
  if (bidi !== null) {
    const code = bidi[0].codePointAt(0)?.toString(16).padStart(4, "0") ?? "?";
    fail(
      "PACK_YAML_UNSAFE",
      positionAt(text, bidi.index),
      `bidirectional control character U+${code} is not allowed in a manifest`,
    );
  }
  let depth = 0;
  let quote = "";
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (comment) {
      if (c === "\n") comment = false;
    } else if (quote !== "") {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") {
      // A quote opens a quoted scalar only where a scalar can start (after `:`, `-`, `[`, `{`,
      // `,`, `?` or at a line start), never inside a plain scalar such as `it's`.
      let j = i - 1;
      while (j >= 0 && (text[j] === " " || text[j] === "\t")) j--;
      const before = j < 0 ? "\n" : text[j];
      if (before !== undefined && "\n[{,:-?".includes(before)) quote = c;
    } else if (c === "#") {
      const before = text[i - 1];
      if (before === undefined || before === " " || before === "\t" || before === "\n")
        comment = true;
    } else if (c === "[" || c === "{") {
      if (++depth > limits.maxDepth) {
        fail(
          "PACK_LIMIT",
          positionAt(text, i),
          `collections nest deeper than ${limits.maxDepth} levels`,
        );
      }
    } else if ((c === "]" || c === "}") && depth > 0) {
      depth--;
    }
  }
  blockDepthPrescan(text, limits);
  let ids = 0;
  const idKey = /(?:^|[\s{,])-?\s*["']?id["']?\s*:/gm;
  while (idKey.exec(text) !== null) {
    if (++ids > limits.maxDeclaredSteps) {
      fail(
        "PACK_LIMIT",
        { line: 0, column: 0 },
        `more than ${limits.maxDeclaredSteps} steps (ids) declared; the limit is ${limits.maxDeclaredSteps}`,
      );
    }
  }
}

/**
 * Refuses block collections nested far too deep before the parser sees them: its cost grows
 * with the square of the depth (600 levels took 200 ms), while this scan is linear. Depth is
 * estimated from indentation (a line indented deeper than the one before opens a level; each
 * leading `- ` is a sequence level), skipping the content of block scalars (`|`, `>`). It can
 * over-count by a level or two (continuation lines of plain scalars), so it refuses only what is
 * clearly beyond the limit; the exact check after parsing catches the rest.
 */
function blockDepthPrescan(text: string, limits: PackLimits): void {
  const indents: number[] = [];
  let scalarParent = -1; // inside a block scalar: lines indented deeper than this are content
  let offset = 0;
  for (const line of text.split("\n")) {
    const start = offset;
    offset += line.length + 1;
    const indent = line.length - line.trimStart().length;
    const content = line.trimStart();
    if (content === "" || content.startsWith("#")) continue;
    if (scalarParent >= 0) {
      if (indent > scalarParent) continue;
      scalarParent = -1;
    }
    while (indents.length > 0 && (indents.at(-1) ?? 0) >= indent) indents.pop();
    indents.push(indent);
    const dashes = /^(?:-[ \t]+)+/.exec(content)?.[0].replace(/[ \t]/g, "").length ?? 0;
    const depth = indents.length - 1 + dashes;
    if (depth > limits.maxDepth + 2) {
      fail(
        "PACK_LIMIT",
        positionAt(text, start + indent),
        `collections nest deeper than ${limits.maxDepth} levels`,
      );
    }
    // A block scalar header (`key: |`, `- >-`, `|2`): its content lines follow, indented deeper.
    if (/(?:^|[\s:-])[|>][-+0-9]*\s*(?:#.*)?$/.test(content)) scalarParent = indent;
  }
}

/** Walks the node tree without recursion, checking depth and key names. */
function checkTree(doc: Document, lineCounter: LineCounter, limits: PackLimits): void {
  const stack: { node: unknown; depth: number; path: (string | number)[] }[] = [
    { node: doc.contents, depth: 0, path: [] },
  ];
  while (stack.length > 0) {
    const { node, depth, path } = stack.pop() as (typeof stack)[number];
    const tag = (node as { tag?: string } | null)?.tag;
    if (tag !== undefined && !allowedTags.has(tag)) {
      const offset = (node as Node).range?.[0] ?? 0;
      const { line, col } = lineCounter.linePos(offset);
      fail(
        "PACK_YAML_UNSAFE",
        { line, column: col },
        `the YAML tag ${tag} is not allowed; manifests use plain strings, numbers, booleans, null, lists and mappings`,
        formatPath(path),
      );
    }
    if (isMap(node) || isSeq(node)) {
      if (depth > limits.maxDepth) {
        const offset = (node as Node).range?.[0] ?? 0;
        const { line, col } = lineCounter.linePos(offset);
        fail(
          "PACK_LIMIT",
          { line, column: col },
          `collections nest deeper than ${limits.maxDepth} levels`,
        );
      }
    }
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (typeof key !== "string" && typeof key !== "number" && typeof key !== "boolean") {
          const offset = (pair.key as Node | null)?.range?.[0] ?? 0;
          const { line, col } = lineCounter.linePos(offset);
          fail("PACK_YAML_UNSAFE", { line, column: col }, "mapping keys must be plain scalars");
        }
        const name = String(key);
        if (forbiddenKeys.has(name)) {
          const offset = (pair.key as Node).range?.[0] ?? 0;
          const { line, col } = lineCounter.linePos(offset);
          fail(
            "PACK_YAML_UNSAFE",
            { line, column: col },
            `the key "${name}" is not allowed`,
            formatPath([...path, name]),
          );
        }
        stack.push({ node: pair.value, depth: depth + 1, path: [...path, name] });
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        stack.push({ node: item, depth: depth + 1, path: [...path, index] });
      });
    } else if (isAlias(node)) {
      // Aliases are resolved (and counted) by toJS; nothing to walk here.
    }
  }
}

/** Refuses values JSON cannot carry (`.inf`, `.nan`), so plans and hashes stay well defined. */
function checkValues(root: unknown, locate: (path: (string | number)[]) => SourcePosition): void {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: root, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop() as (typeof stack)[number];
    if (typeof value === "number" && !Number.isFinite(value)) {
      fail(
        "PACK_YAML_UNSAFE",
        locate(path),
        `${value} is not allowed: manifest numbers must be finite`,
        formatPath(path),
      );
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => {
        stack.push({ value: item, path: [...path, index] });
      });
    } else if (value !== null && typeof value === "object") {
      for (const [key, inner] of Object.entries(value))
        stack.push({ value: inner, path: [...path, key] });
    }
  }
}

/**
 * Parses untrusted manifest text into data plus a position index. Rejects, each with a
 * located diagnostic: oversize input, forbidden characters, syntax errors, duplicate keys,
 * alias floods, excessive nesting, prototype-polluting keys and non-scalar keys.
 */
export function parseYamlSource(text: string, limits: PackLimits): YamlSource {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > limits.maxBytes) {
    fail(
      "PACK_TOO_LARGE",
      { line: 0, column: 0 },
      `manifest is ${bytes} bytes; the limit is ${limits.maxBytes}`,
    );
  }
  prescan(text, limits);
  const lineCounter = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, {
      lineCounter,
      uniqueKeys: true,
      prettyErrors: true,
      strict: true,
      version: "1.2",
      schema: "core",
      merge: false,
    });
  } catch (error) {
    // The parser recurses on some shapes; a stack overflow means the input is too deep.
    if (error instanceof RangeError)
      fail("PACK_LIMIT", { line: 0, column: 0 }, "manifest nests too deeply to parse");
    throw error;
  }
  const firstError = doc.errors[0];
  if (firstError !== undefined && /call stack/i.test(firstError.message)) {
    fail("PACK_LIMIT", { line: 0, column: 0 }, "manifest nests too deeply to parse");
  }
  if (firstError !== undefined) {
    const position = firstError.linePos?.[0] ?? { line: 0, col: 0 };
    const code = firstError.code === "DUPLICATE_KEY" ? "duplicate key" : "YAML syntax error";
    const message = firstError.message.split(" at line ")[0] ?? firstError.message;
    fail("PACK_YAML_SYNTAX", { line: position.line, column: position.col }, `${code}: ${message}`);
  }
  checkTree(doc, lineCounter, limits);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: limits.maxAliases });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/unresolved alias/i.test(message)) {
      fail("PACK_YAML_SYNTAX", { line: 0, column: 0 }, `YAML syntax error: ${message}`);
    }
    if (/alias/i.test(message)) {
      fail(
        "PACK_YAML_UNSAFE",
        { line: 0, column: 0 },
        `too many alias expansions (limit ${limits.maxAliases}): ${message}`,
      );
    }
    throw error;
  }
  checkValues(value, (path) => {
    const node = doc.getIn(path, true) as Node | undefined;
    const { line, col } = lineCounter.linePos(node?.range?.[0] ?? 0);
    return { line, column: col };
  });
  const digest = `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;
  return {
    value,
    digest,
    locate(path, options) {
      if (options?.key === true && path.length > 0) {
        const parent = doc.getIn(path.slice(0, -1), true);
        if (isMap(parent)) {
          const name = String(path[path.length - 1]);
          const pair = parent.items.find(
            (item) => isScalar(item.key) && String(item.key.value) === name,
          );
          const offset = (pair?.key as Node | undefined)?.range?.[0];
          if (offset !== undefined) {
            const { line, col } = lineCounter.linePos(offset);
            return { line, column: col };
          }
        }
      }
      for (let length = path.length; length >= 0; length--) {
        const node = doc.getIn(path.slice(0, length), true) as Node | undefined;
        const offset = node?.range?.[0];
        if (offset !== undefined) {
          const { line, col } = lineCounter.linePos(offset);
          return { line, column: col };
        }
      }
      return { line: 0, column: 0 };
    },
  };
}
