/**
 * Issue 8, item 13: hostile manifests and request bodies sent to every endpoint that parses a
 * manifest (POST /api/runs, /api/packs, /api/simulations) are refused with a clear problem
 * document, quickly (each request < 500 ms over HTTP; the planner's own share is measured by
 * bench/planning.ts), without growing memory, and while the gateway keeps answering /healthz.
 *
 * The whole stack runs in this test process, so the event-loop probe and the memory figure
 * cover the gateway, the planner and the executor together.
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RestClient } from "../../services/gateway/src/testing/rest-client.ts";
import { manifest, type SecurityStack, startSecurityStack, timed } from "./support/stack.ts";

/** Each request, hostile or not, must be answered within this (HTTP round trip included). */
const requestBudgetMs = 500;

const header = "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\n";

function aliasBomb(): string {
  // Nine levels of nine references each: 9^9 ≈ 387 million nodes if expanded.
  const lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (let level = 1; level <= 9; level++)
    lines.push(
      `a${level}: &a${level} [${Array(9)
        .fill(`*a${level - 1}`)
        .join(", ")}]`,
    );
  return `${header}metadata: {name: bomb, version: 1.0.0}\nx:\n${lines.map((l) => `  ${l}`).join("\n")}\nspec:\n  steps: [{id: a, run: {uses: builtin:noop}}]\n`;
}

function deepFlow(depth: number): string {
  return `${header}metadata: {name: deep, version: 1.0.0}\nspec:\n  steps: [{id: a, run: {uses: builtin:noop, with: {x: ${"[".repeat(depth)}${"]".repeat(depth)}}}}]\n`;
}

function deepBlock(depth: number): string {
  // Block mappings one space deeper each level: 100k levels would be 5 GB of indentation, so
  // this one stays at 600 levels (180 KB), still ten times the depth limit.
  const lines: string[] = [];
  for (let i = 0; i < depth; i++) lines.push(`${" ".repeat(i)}k:`);
  return `${header}metadata: {name: deep-block, version: 1.0.0}\nx:\n${lines.map((l) => ` ${l}`).join("\n")} 1\nspec:\n  steps: [{id: a, run: {uses: builtin:noop}}]\n`;
}

function manySteps(count: number): string {
  const steps = Array.from(
    { length: count },
    (_, i) => `    - {id: s${i}, run: {uses: builtin:noop}}`,
  );
  return manifest("many-steps", `  steps:\n${steps.join("\n")}\n`);
}

/** A manifest (YAML text) and the codes a clear refusal may carry. */
interface Hostile {
  readonly name: string;
  readonly text: string;
  readonly codes: readonly string[];
  /** Part of the problem's detail that says what was wrong. */
  readonly detail: RegExp;
}

const hostile: Hostile[] = [
  {
    name: "alias bomb (billion laughs)",
    text: aliasBomb(),
    codes: ["PACK_YAML_UNSAFE"],
    detail: /alias/i,
  },
  {
    name: "100,000-deep flow nesting",
    text: deepFlow(100_000),
    codes: ["PACK_LIMIT", "PACK_YAML_UNSAFE"],
    detail: /depth|nest|deep/i,
  },
  {
    name: "600-deep block nesting",
    text: deepBlock(600),
    codes: ["PACK_LIMIT", "PACK_YAML_UNSAFE"],
    detail: /depth|nest|deep/i,
  },
  {
    name: "10,000 steps",
    text: manySteps(10_000),
    codes: ["PACK_LIMIT"],
    detail: /steps/i,
  },
  {
    name: "1 MiB manifest (under the body limit, over the manifest limit)",
    text: manifest(
      "big",
      `  steps:\n    - id: a\n      run: {uses: builtin:noop, with: {message: "${"x".repeat(1024 * 1024)}"}}\n`,
    ),
    codes: ["PACK_TOO_LARGE"],
    detail: /bytes|large|size/i,
  },
  {
    name: "duplicate keys",
    text: `${header}metadata: {name: dup, version: 1.0.0}\nmetadata: {name: other, version: 2.0.0}\nspec:\n  steps: [{id: a, run: {uses: builtin:noop}}]\n`,
    codes: ["PACK_YAML_SYNTAX", "PACK_YAML_UNSAFE", "PACK_SCHEMA"],
    detail: /duplicate|unique/i,
  },
  {
    name: "__proto__ key",
    text: manifest(
      "proto",
      "  steps:\n    - id: a\n      run: {uses: builtin:noop, with: {__proto__: {polluted: true}}}\n",
    ),
    codes: ["PACK_SCHEMA", "PACK_YAML_UNSAFE"],
    detail: /__proto__/,
  },
  {
    name: "constructor.prototype keys",
    text: manifest(
      "ctor",
      "  steps:\n    - id: a\n      run: {uses: builtin:noop, with: {constructor: {prototype: {polluted: true}}}}\n",
    ),
    codes: ["PACK_SCHEMA", "PACK_YAML_UNSAFE"],
    detail: /constructor|prototype|unknown|not allowed/i,
  },
  {
    name: "control characters (NUL, ESC, BEL) in values",
    text: manifest(
      "ctl",
      '  steps:\n    - id: a\n      run: {uses: builtin:noop, with: {message: "a\0b\x1b[31mc\x07"}}\n',
    ),
    codes: ["PACK_YAML_SYNTAX", "PACK_SCHEMA", "PACK_YAML_UNSAFE"],
    detail: /control|character|invalid/i,
  },
  {
    name: "raw control characters in a key",
    text: manifest("ctl-key", "  steps:\n    - id: a\x01\x02\n      run: {uses: builtin:noop}\n"),
    codes: ["PACK_YAML_SYNTAX", "PACK_SCHEMA", "PACK_YAML_UNSAFE"],
    detail: /control|character|invalid|pattern/i,
  },
  {
    name: "a custom YAML tag",
    text: `${header}metadata: !!js/function "function(){ return 1 }"\nspec:\n  steps: [{id: a, run: {uses: builtin:noop}}]\n`,
    codes: ["PACK_YAML_SYNTAX", "PACK_YAML_UNSAFE", "PACK_SCHEMA"],
    detail: /tag|unresolved|unsupported|must be/i,
  },
  {
    name: "many documents in one stream",
    text: Array(1000).fill(`${header}metadata: {name: a, version: 1.0.0}\n`).join("---\n"),
    codes: ["PACK_YAML_SYNTAX", "PACK_YAML_UNSAFE", "PACK_SCHEMA"],
    detail: /document/i,
  },
];

/** The three endpoints that parse manifests, and how each wraps the manifest. */
const endpoints: { path: string; body: (text: string) => unknown }[] = [
  { path: "/api/runs", body: (text) => ({ manifest: text }) },
  { path: "/api/packs", body: (text) => text }, // application/yaml, bare
  { path: "/api/simulations", body: (text) => ({ manifest: text }) },
];

let stack: SecurityStack;
let client: RestClient;
let worstHealthMs = 0;
let probe: NodeJS.Timeout | undefined;
let probing = false;

beforeAll(async () => {
  stack = await startSecurityStack();
  client = await stack.client();
  // Warm up the code paths, so the first measurement is not the JIT's.
  await client.post("/api/simulations", {
    manifest: manifest("warm", "  steps: [{id: a, run: {uses: builtin:noop}}]\n"),
  });
  // Liveness probe during the whole file: /healthz every 50 ms, worst answer time kept.
  probe = setInterval(() => {
    if (probing) return;
    probing = true;
    const started = performance.now();
    void fetch(`${stack.url}/healthz`)
      .then((response) => response.text())
      .then(() => {
        worstHealthMs = Math.max(worstHealthMs, performance.now() - started);
      })
      .catch(() => {}) // the stack is closing
      .finally(() => {
        probing = false;
      });
  }, 50);
});
afterAll(async () => {
  clearInterval(probe);
  await stack.close();
});

describe("hostile manifests are refused quickly with a clear problem document", () => {
  for (const { name, text, codes, detail } of hostile) {
    for (const endpoint of endpoints) {
      test(`${name}: POST ${endpoint.path}`, async () => {
        const { ms, value: response } = await timed(() =>
          client.post<{ code: string; detail: string; status: number; title: string }>(
            endpoint.path,
            endpoint.body(text),
          ),
        );
        assert.ok(
          response.status >= 400 && response.status < 500,
          `${response.status}: ${JSON.stringify(response.body).slice(0, 500)}`,
        );
        assert.match(response.headers.get("content-type") ?? "", /application\/problem\+json/);
        assert.ok(
          codes.includes(response.body.code),
          `code ${response.body.code}: ${response.body.detail?.slice(0, 300)}`,
        );
        assert.match(response.body.detail, detail);
        assert.ok(response.body.detail.length < 4096, "the detail stays short");
        assert.ok(ms < requestBudgetMs, `answered in ${Math.round(ms)} ms`);
      });
    }
  }
});

describe("request bodies", () => {
  test("a 10 MB body is refused with 413 REQUEST_TOO_LARGE on every endpoint", async () => {
    const huge = "x".repeat(10 * 1024 * 1024);
    for (const endpoint of endpoints) {
      const { ms, value: response } = await timed(() =>
        client.post<{ code: string }>(endpoint.path, endpoint.body(manifest("huge", huge))),
      );
      assert.equal(response.status, 413, endpoint.path);
      assert.equal(response.body.code, "REQUEST_TOO_LARGE", endpoint.path);
      assert.ok(ms < requestBudgetMs, `${endpoint.path}: ${Math.round(ms)} ms`);
    }
  });

  test("a body that claims 10 MB but trickles in is refused before it is read", async () => {
    const response = await fetch(`${stack.url}/api/runs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await stack.mintToken()}`,
        "content-type": "application/json",
        "content-length": String(10 * 1024 * 1024),
      },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"manifest": "'));
          // never closed: the gateway must answer from the declared length alone
        },
      }),
      duplex: "half",
    } as RequestInit).catch((error: unknown) => error as Error);
    if (response instanceof Error) return; // the connection was cut: refused, too
    assert.equal(response.status, 413);
  });

  test("__proto__ and constructor keys in JSON request bodies are refused", async () => {
    for (const raw of [
      '{"manifest": "x", "__proto__": {"polluted": true}}',
      '{"pack": {"name": "x"}, "inputs": {"__proto__": {"polluted": true}}}',
      '{"pack": {"name": "x"}, "inputs": {"constructor": {"prototype": {"polluted": true}}}}',
    ]) {
      const response = await fetch(`${stack.url}/api/runs`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await stack.mintToken()}`,
          "content-type": "application/json",
        },
        body: raw,
      });
      const body = (await response.json()) as { code: string };
      assert.equal(response.status, 400, raw);
      assert.equal(body.code, "REQUEST_INVALID", raw);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype polluted");
  });

  async function postDeepInputs(
    depth: number,
  ): Promise<{ ms: number; status: number; code: string }> {
    const deep = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    const token = await stack.mintToken();
    const pack = manifest(
      "deep-inputs",
      "  inputs: [{name: x, type: object}]\n  steps: [{id: a, run: {uses: builtin:noop}}]\n",
    );
    const { ms, value } = await timed(async () => {
      const response = await fetch(`${stack.url}/api/runs`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: `{"manifest": ${JSON.stringify(pack)}, "inputs": {"x": ${deep}}}`,
      });
      return { status: response.status, body: (await response.json()) as { code: string } };
    });
    return { ms, status: value.status, code: value.body.code };
  }

  test("deeply nested JSON inputs (100 to 100,000 levels) crash nothing and answer quickly", async () => {
    for (const depth of [100, 10_000, 100_000]) {
      const { ms, status } = await postDeepInputs(depth);
      assert.ok(status >= 400, `${depth}: ${status}`);
      assert.ok(ms < requestBudgetMs, `${depth}: ${Math.round(ms)} ms`);
    }
    const health = await fetch(`${stack.url}/healthz`);
    assert.equal(health.status, 200);
  });

  test("deeply nested JSON inputs are refused as the client's error (4xx), not 500", async () => {
    const { status, code } = await postDeepInputs(100);
    assert.equal(status, 400, code);
    assert.equal(code, "REQUEST_INVALID");
  });
});

describe("hostile schemas", () => {
  test("a catastrophically backtracking `pattern` (ReDoS) does not stall the planner", async () => {
    const pack = manifest(
      "redos",
      '  inputs: [{name: s, type: string, schema: {type: string, pattern: "^(a+)+$"}}]\n  steps: [{id: a, run: {uses: builtin:noop}}]\n',
    );
    for (const endpoint of ["/api/simulations", "/api/runs"]) {
      const { ms, value: response } = await timed(() =>
        client.post<{ code: string }>(endpoint, {
          manifest: pack,
          inputs: { s: `${"a".repeat(5000)}b` },
        }),
      );
      assert.equal(response.status, 400, endpoint);
      assert.equal(response.body.code, "INPUT_INVALID", endpoint);
      assert.ok(ms < requestBudgetMs, `${endpoint}: ${Math.round(ms)} ms`);
    }
  });

  test("a pattern RE2 cannot run in linear time is refused when the pack is validated", async () => {
    const response = await client.post<{ code: string; detail: string }>(
      "/api/packs",
      manifest(
        "lookahead",
        '  inputs: [{name: s, type: string, schema: {type: string, pattern: "^(?!admin).*$"}}]\n  steps: [{id: a, run: {uses: builtin:noop}}]\n',
      ),
    );
    assert.equal(response.status, 400);
    assert.equal(response.body.code, "PACK_SCHEMA");
    assert.match(response.body.detail, /RE2/);
  });
});

describe("afterwards", () => {
  test("the gateway stayed responsive throughout and memory did not balloon", async () => {
    const { ms, value } = await timed(() => fetch(`${stack.url}/healthz`));
    assert.equal(value.status, 200);
    assert.ok(ms < 200, `healthz ${Math.round(ms)} ms`);
    assert.ok(
      worstHealthMs < requestBudgetMs,
      `worst /healthz during the attacks ${Math.round(worstHealthMs)} ms`,
    );
    // Everything (gateway, planner, executor, evidence) lives in this process.
    const rssMb = process.memoryUsage().rss / 1024 / 1024;
    assert.ok(rssMb < 1024, `rss ${Math.round(rssMb)} MiB`);
    // And it still works for honest requests.
    const ok = await client.post<{ run: { id: string } }>("/api/runs", {
      manifest: manifest("honest", "  steps: [{id: a, run: {uses: builtin:noop}}]\n"),
    });
    assert.equal(ok.status, 201);
  });
});
