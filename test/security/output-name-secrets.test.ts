/**
 * Issue 19, break 5: a step wrote a secret as an output *name* (`<secret>=x` into
 * `$PACKRUN_OUTPUT`). Output values were masked, names were not: the secret was stored in the
 * run record and served by the API, the events and the evidence.
 *
 * Now an output name that contains a secret (in any form the masker knows) fails the step, its
 * outputs are dropped, and the secret is nowhere: run JSON, event log, attestation, bundle,
 * every table.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { gunzipSync } from "node:zlib";
import pg from "pg";
import { test } from "vitest";
import { manifest, runEvents, submitRun, useSecurityStack, waitForRun } from "./support/stack.ts";

/** A secret that is a valid output name, so the output file parser accepts it as one. */
const secret = `tok_${randomBytes(12).toString("hex")}`;

/** A pack whose one step, `leak`, runs `script` with the secret in `$S`. */
function leakPack(script: string): string {
  return manifest(
    "output-name-leak",
    `  secrets: [{name: token}]
  steps:
    - id: leak
      run:
        uses: builtin:shell
        with: {env: {S: "{{ secrets.token }}"}, script: ${JSON.stringify(script)}}
`,
  );
}

/** The two forms of the output file: `name=value` and `name<<DELIMITER`. */
const scripts = {
  plain: 'echo "$S=x" >> "$PACKRUN_OUTPUT"',
  heredoc: 'printf "%s<<EOF\\nx\\nEOF\\n" "prefix_$S" >> "$PACKRUN_OUTPUT"',
};

const ctx = useSecurityStack();

function assertClean(where: string, text: string): void {
  const at = text.indexOf(secret.slice(4));
  assert.equal(at, -1, `the secret leaked into ${where}: …${text.slice(at - 60, at + 60)}…`);
}

for (const [form, script] of Object.entries(scripts))
  test(`an output named after a secret (${form}) fails the step and is stored nowhere`, async () => {
    await attack(script);
  });

async function attack(script: string): Promise<void> {
  const submitted = await submitRun(ctx.alice, {
    manifest: leakPack(script),
    secrets: { token: secret },
  });
  const run = await waitForRun(ctx.alice, submitted.id, undefined, 60_000);
  const step = run.steps.find((s) => s.id === "leak");
  assert.equal(step?.state, "failed", JSON.stringify(step));
  assert.match(step?.reason ?? "", /output name .*secret/, JSON.stringify(step));
  assertClean(
    "GET /api/runs/{id}",
    JSON.stringify((await ctx.alice.get(`/api/runs/${run.id}`)).body),
  );
  const token = await ctx.stack.mintToken();
  const deadline = Date.now() + 20_000;
  while ((await ctx.alice.get(`/api/runs/${run.id}/attestation`)).status !== 200) {
    assert.ok(Date.now() < deadline, "the run was never finalised");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assertClean("the event log", (await runEvents(ctx.stack.url, token, run.id)).raw);
  assertClean(
    "the attestation",
    JSON.stringify((await ctx.alice.get(`/api/runs/${run.id}/attestation`)).body),
  );
  const bundle = await fetch(`${ctx.stack.url}/api/runs/${run.id}/bundle`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(bundle.status, 200);
  assertClean("the bundle", gunzipSync(Buffer.from(await bundle.arrayBuffer())).toString("latin1"));

  const client = new pg.Client({ connectionString: ctx.stack.databaseUrl });
  await client.connect();
  try {
    const tables = await client.query<{ table_schema: string; table_name: string }>(
      `SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema IN ('planner', 'executor', 'evidence')`,
    );
    for (const { table_schema, table_name } of tables.rows) {
      const name = `${pg.escapeIdentifier(table_schema)}.${pg.escapeIdentifier(table_name)}`;
      const result = await client.query<{ row: string }>(`SELECT t::text AS row FROM ${name} t`);
      for (const { row } of result.rows) assertClean(`table ${name}`, row);
    }
  } finally {
    await client.end();
  }
}
