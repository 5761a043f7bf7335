/**
 * Issue 8, item 15: a step prints a secret in every common encoding (raw, base64 in several
 * flavours and line wrappings, URL-encoded by several encoders, JSON-escaped by several
 * encoders, split across two writes, on stdout and stderr, into its outputs), and then every
 * place the run left data is scanned for it: the stored log (NDJSON), the live SSE stream, the
 * run as the API returns it, the attestation, the evidence bundle, every table of every service
 * schema in PostgreSQL, every Redis key of the stack, every file the services keep, and the
 * services' own log lines at debug level.
 *
 * The scan looks for a random core of the secret that survives any escaping (hex digits), in
 * plain text, as hex, and as base64 at every byte alignment: that catches forms the masking
 * does not know about, not only the ones it does.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, test } from "vitest";
import type { RestClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  eventsWhen,
  manifest,
  type RunJson,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  waitForRun,
} from "./support/stack.ts";

/** What must never be stored: random, so it cannot occur by chance. */
const core = randomBytes(12).toString("hex");
/** The secret: the core wrapped in characters every encoder treats differently, > 57 bytes. */
const secret = `S3cr3t-${core} p@ss/w0rd "q" \\b+s&x=1%ü!*'()~<t>-${randomBytes(6).toString("hex")}`;

/** Needles: the core as text, as hex, and its base64 at each of the three byte alignments. */
function needles(): string[] {
  const bytes = Buffer.from(core);
  const found = [core, bytes.toString("hex")];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes])
      .toString("base64")
      .replace(/=+$/, "");
    const lead = [0, 2, 3][offset] ?? 0;
    const middle = encoded.slice(lead, encoded.length - 1);
    found.push(middle, middle.replaceAll("+", "-").replaceAll("/", "_"));
  }
  return found;
}

/** Where in `text` (and in `text` with line breaks removed) a needle occurs, if anywhere. */
function leak(text: string): string | undefined {
  const joined = text.replace(/\\n|\\r|\r|\n/g, "");
  for (const needle of needles()) {
    for (const haystack of [text, joined]) {
      const at = haystack.indexOf(needle);
      if (at >= 0) return haystack.slice(Math.max(0, at - 60), at + needle.length + 60);
    }
  }
  return undefined;
}

function assertClean(where: string, text: string): void {
  const found = leak(text);
  assert.equal(found, undefined, `the secret leaked into ${where}: …${found}…`);
}

const script = String.raw`
set -u
have() { command -v "$1" >/dev/null 2>&1; }
echo "raw: $S"
printf 'raw on stderr: %s\n' "$S" >&2
echo "base64: $(printf %s "$S" | base64 -w0)"
echo "base64 of echo: $(echo "$S" | base64 -w0)"
echo "base64 url-safe unpadded: $(printf %s "$S" | base64 -w0 | tr '+/' '-_' | tr -d =)"
echo "base64 after a prefix: $(printf 'prefix-%s' "$S" | base64 -w0)"
echo "base64 wrapped at 76:"; echo "$S" | base64
echo "base64 url-safe wrapped at 76:"; printf %s "$S" | base64 | tr '+/' '-_'
if have openssl; then echo "openssl base64 (64 columns):"; printf %s "$S" | openssl base64; fi
if have python3; then
  python3 - <<'PY'
import json, os, urllib.parse as u
s = os.environ["S"]
print("python quote:", u.quote(s, safe=""))
print("python quote default:", u.quote(s))
print("python quote_plus:", u.quote_plus(s))
print("python json:", json.dumps({"s": s}))
print("python json unicode:", json.dumps({"s": s}, ensure_ascii=False))
PY
fi
if have jq; then
  jq -rn --arg s "$S" '"jq uri: " + ($s|@uri)'
  jq -cn --arg s "$S" '{jq: $s}'
fi
if have node; then
  node -e 'const s = process.env.S; console.log("node uri:", encodeURIComponent(s)); console.log("node json:", JSON.stringify({s}))'
fi
printf 'split across writes: %s' "$(printf %s "$S" | cut -b1-25)"; sleep 0.3
printf '%s\n' "$(printf %s "$S" | cut -b26-)"
printf 'split base64: %s' "$(printf %s "$S" | base64 -w0 | cut -c1-30)"; sleep 0.2
printf '%s\n' "$(printf %s "$S" | base64 -w0 | cut -c31-)"
echo "leaked=$S" >> "$PACKRUN_OUTPUT"
echo "done"
`;

const pack = manifest(
  "secret-leaks",
  `  secrets: [{name: token}]
  steps:
    - id: leak
      run:
        uses: builtin:shell
        with:
          env: {S: "{{ secrets.token }}"}
          argv: [bash, -c, ${JSON.stringify(script)}]
`,
);

let stack: SecurityStack;
let alice: RestClient;
let run: RunJson;
let token: string;

beforeAll(async () => {
  stack = await startSecurityStack({ logLevel: "debug" });
  alice = await stack.client();
  token = await stack.mintToken();
  run = await submitRun(alice, { manifest: pack, secrets: { token: secret } });
  run = await waitForRun(alice, run.id, undefined, 60_000);
  assert.equal(run.state, "succeeded", JSON.stringify(run.steps));
  // Finalised: the attestation and bundle exist.
  const deadline = Date.now() + 20_000;
  while ((await alice.get(`/api/runs/${run.id}/attestation`)).status !== 200) {
    assert.ok(Date.now() < deadline, "the run was never finalised");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});
afterAll(() => stack.close());

test("the step really printed every form (masked), so the scans below mean something", async () => {
  const events = await eventsWhen(stack.url, token, run.id, (log) =>
    log.some((event) => event.type === "run.succeeded"),
  );
  const lines = events
    .filter((event) => event.type.startsWith("log.") && event.stepId === "leak")
    .map((event) => event.message);
  if (process.env.PACKRUN_TEST_SHOW_LINES === "1") console.log(lines.join("\n"));
  assert.ok(lines.includes("done"), lines.join("\n"));
  assert.ok(lines.includes("raw: ***"), lines.join("\n"));
  assert.ok(lines.includes("raw on stderr: ***"), lines.join("\n"));
  assert.ok(lines.includes("split across writes: ***"), lines.join("\n"));
  assert.ok(lines.filter((line) => line.includes("***")).length >= 12, lines.join("\n"));
});

test("stored log (NDJSON) and run details", async () => {
  const response = await fetch(`${stack.url}/api/runs/${run.id}/logs?format=ndjson`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assertClean("the stored log", await response.text());
  assertClean("GET /api/runs/{id}", JSON.stringify((await alice.get(`/api/runs/${run.id}`)).body));
  assertClean("GET /api/runs", JSON.stringify((await alice.get("/api/runs")).body));
  const step = run.steps.find((s) => s.id === "leak");
  assert.equal((step?.outputs as Record<string, unknown> | undefined)?.leaked, "***");
});

test("the SSE stream", async () => {
  const response = await fetch(`${stack.url}/api/runs/${run.id}/logs`, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
  });
  const text = await response.text();
  assert.match(text, /event: end/);
  assertClean("the SSE stream", text);
});

test("the attestation and the evidence bundle (every member)", async () => {
  const attestation = await alice.get<{ envelope?: { payload?: string } }>(
    `/api/runs/${run.id}/attestation`,
  );
  const raw = JSON.stringify(attestation.body);
  assertClean("the attestation", raw);
  const payload = (attestation.body.envelope?.payload ?? raw.match(/"payload":"([^"]+)"/)?.[1]) as
    | string
    | undefined;
  if (payload !== undefined)
    assertClean("the attested statement", Buffer.from(payload, "base64").toString("utf8"));

  const response = await fetch(`${stack.url}/api/runs/${run.id}/bundle`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200);
  const tar = gunzipSync(Buffer.from(await response.arrayBuffer()));
  // Members are stored verbatim in the tar stream; scan it whole and member by member.
  assertClean("the evidence bundle", tar.toString("latin1"));
  assertClean("the evidence bundle (utf-8)", tar.toString("utf8"));
  const names: string[] = [];
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const name = tar.toString("utf8", offset, offset + 100).replace(/\0.*$/s, "");
    if (name === "") break;
    const size = Number.parseInt(tar.toString("utf8", offset + 124, offset + 136).trim(), 8);
    names.push(name);
    const member = tar.subarray(offset + 512, offset + 512 + size).toString("utf8");
    assertClean(`bundle member ${name}`, member);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  assert.ok(names.includes("transcript.ndjson"), names.join(", "));
  assert.ok(names.includes("inputs.json"), names.join(", "));
});

test("every table of every service schema in PostgreSQL", async () => {
  const client = new pg.Client({ connectionString: stack.databaseUrl });
  await client.connect();
  try {
    const tables = await client.query<{ table_schema: string; table_name: string }>(
      `SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE'
          AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    const schemas = new Set(tables.rows.map((row) => row.table_schema));
    for (const schema of ["planner", "executor", "evidence"])
      assert.ok(schemas.has(schema), `schema ${schema} was scanned`);
    let rows = 0;
    for (const { table_schema, table_name } of tables.rows) {
      const name = `${pg.escapeIdentifier(table_schema)}.${pg.escapeIdentifier(table_name)}`;
      const result = await client.query<{ row: string }>(`SELECT t::text AS row FROM ${name} t`);
      rows += result.rows.length;
      for (const { row } of result.rows) assertClean(`table ${name}`, row);
    }
    assert.ok(rows > 20, `${rows} rows scanned`);
  } finally {
    await client.end();
  }
});

test("every Redis key of the stack", async () => {
  const redis = new Redis(stack.redisUrl);
  try {
    let cursor = "0";
    let keys = 0;
    do {
      const [next, batch] = await redis.scan(
        cursor,
        "MATCH",
        `${stack.redisKeyPrefix.replace(/[*?[\]\\]/g, "\\$&")}*`,
        "COUNT",
        1000,
      );
      cursor = next;
      for (const key of batch) {
        keys++;
        const type = await redis.type(key);
        const value =
          type === "string"
            ? await redis.getBuffer(key)
            : type === "hash"
              ? await redis.hgetallBuffer(key)
              : type === "list"
                ? await redis.lrangeBuffer(key, 0, -1)
                : type === "set"
                  ? await redis.smembersBuffer(key)
                  : type === "zset"
                    ? await redis.zrangeBuffer(key, "0", "-1")
                    : type === "stream"
                      ? await redis.xrange(key, "-", "+")
                      : null;
        assertClean(`redis ${type} ${key}`, JSON.stringify(value, (_, v) => v) ?? "");
        if (Buffer.isBuffer(value)) assertClean(`redis ${key}`, value.toString("latin1"));
      }
    } while (cursor !== "0");
    assert.ok(keys >= 0);
  } finally {
    redis.disconnect();
  }
});

test("every file the services keep (artifacts, keys, work directories)", async () => {
  let files = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        files++;
        assertClean(`file ${path}`, (await readFile(path)).toString("latin1"));
      }
    }
  };
  await walk(stack.home);
  assert.ok(files > 0);
});

test("the services' own log lines (debug level)", () => {
  const lines = stack.logLines();
  assert.ok(lines.length > 0);
  assertClean("the service logs", JSON.stringify(lines));
});
