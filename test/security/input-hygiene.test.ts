/**
 * Issue 19, break 7: input hygiene of the REST gateway. Values PostgreSQL or gRPC cannot carry
 * (U+0000 in text, a sequence beyond int64, a page token the service never issued) used to
 * surface as 500 INTERNAL; an oversized bearer token got Node's 431 as plain JSON; reusing an
 * idempotency key with a different request silently returned the old run.
 *
 * Now each is a 400 (or 431, or 409) RFC 9457 problem document naming the field, and the same
 * idempotency key with the same request still returns the same run.
 */
import assert from "node:assert/strict";
import { describe, test } from "vitest";
import type { JsonResponse } from "../../services/gateway/src/testing/rest-client.ts";
import { manifest, type RunJson, submitRun, useSecurityStack } from "./support/stack.ts";

const pack = manifest(
  "hygiene",
  `  inputs: [{name: who, type: string, default: world}]
  steps:
    - {id: hello, run: {uses: builtin:noop}}
`,
);
const otherPack = manifest(
  "hygiene-other",
  `  steps:
    - {id: other, run: {uses: builtin:noop}}
`,
);

const ctx = useSecurityStack();

interface Problem {
  status: number;
  code: string;
  detail: string;
  errors?: { path: string; message: string }[];
}

/** Asserts a problem+json answer with `status` whose detail or errors name `field`. */
function assertProblem(response: JsonResponse<unknown>, status: number, field: string): void {
  const body = response.body as Problem;
  assert.equal(response.status, status, JSON.stringify(body));
  assert.match(response.headers.get("content-type") ?? "", /^application\/problem\+json/);
  assert.equal(body.status, status);
  const text = `${body.detail} ${JSON.stringify(body.errors ?? [])}`;
  assert.ok(text.includes(field), `the problem names ${field}: ${text}`);
}

describe("U+0000 anywhere in a request is a 400 naming the field", () => {
  test("in an input value", async () => {
    const response = await ctx.alice.post("/api/runs", {
      manifest: pack,
      inputs: { who: "a\u0000b" },
    });
    assertProblem(response, 400, "inputs/who");
  });

  test("in an input name", async () => {
    const response = await ctx.alice.post("/api/runs", {
      manifest: pack,
      inputs: { "w\u0000": "x" },
    });
    assertProblem(response, 400, "inputs");
  });

  test("in a label", async () => {
    const response = await ctx.alice.post("/api/runs", {
      manifest: pack,
      labels: { team: "\u0000" },
    });
    assertProblem(response, 400, "labels/team");
  });

  test("in an idempotency key", async () => {
    const response = await ctx.alice.post("/api/runs", {
      manifest: pack,
      idempotencyKey: "key-\u0000",
    });
    assertProblem(response, 400, "idempotencyKey");
  });

  test("in a cancel reason", async () => {
    const run = await submitRun(ctx.alice, { manifest: pack });
    const response = await ctx.alice.post(`/api/runs/${run.id}/cancel`, {
      reason: "stop\u0000now",
    });
    assertProblem(response, 400, "reason");
  });

  test("in a query parameter", async () => {
    const response = await ctx.alice.get("/api/runs?pack=a%00b");
    assertProblem(response, 400, "pack");
  });
});

test("a forged page token is a 400 naming pageToken", async () => {
  const forged = [
    Buffer.from(JSON.stringify({ createdAt: "yesterday", id: "x" })).toString("base64url"),
    Buffer.from(JSON.stringify({ createdAt: "2026-01-01T00:00:00Z", id: "not-a-uuid" })).toString(
      "base64url",
    ),
    "!!!",
  ];
  for (const token of forged) {
    const response = await ctx.alice.get(`/api/runs?pageToken=${encodeURIComponent(token)}`);
    assertProblem(response, 400, "pageToken");
  }
});

test("a forged pack-listing page token holding U+0000 is a 400 naming pageToken", async () => {
  const forged = Buffer.from(
    JSON.stringify({ v: 1, s: JSON.stringify(["packs", "acme"]), a: "a\u0000b" }),
  ).toString("base64url");
  const response = await ctx.alice.get(`/api/packs?pageToken=${forged}`);
  assertProblem(response, 400, "pageToken");
});

test("?after= beyond a safe integer is a 400 naming after", async () => {
  const run = await submitRun(ctx.alice, { manifest: pack });
  for (const after of ["1e30", "99999999999999999999"]) {
    const response = await ctx.alice.get(
      `/api/runs/${run.id}/logs?format=ndjson&follow=false&after=${after}`,
    );
    assertProblem(response, 400, "after");
  }
});

test("a 60 KB bearer token gets 431 as application/problem+json", async () => {
  const response = await fetch(`${ctx.stack.url}/api/runs`, {
    headers: { authorization: `Bearer ${"a".repeat(60 * 1024)}` },
  });
  const text = await response.text();
  assert.equal(response.status, 431, text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/problem\+json/);
  const body = JSON.parse(text) as Problem;
  assert.equal(body.status, 431);
  assert.equal(body.code, "REQUEST_HEADERS_TOO_LARGE");
});

describe("idempotency keys", () => {
  test("the same key and the same request return the same run", async () => {
    const body = { manifest: pack, inputs: { who: "x" }, idempotencyKey: "same-1" };
    const first = await ctx.alice.post<{ run: RunJson; created: boolean }>("/api/runs", body);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const again = await ctx.alice.post<{ run: RunJson; created: boolean }>("/api/runs", body);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.created, false);
    assert.equal(again.body.run.id, first.body.run.id);
  });

  test("the same key with other inputs or another manifest is 409 Conflict", async () => {
    const key = "reused-1";
    const first = await ctx.alice.post("/api/runs", {
      manifest: pack,
      inputs: { who: "x" },
      idempotencyKey: key,
    });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const otherInputs = await ctx.alice.post("/api/runs", {
      manifest: pack,
      inputs: { who: "y" },
      idempotencyKey: key,
    });
    assertProblem(otherInputs, 409, "idempotencyKey");
    assert.equal((otherInputs.body as Problem).code, "IDEMPOTENCY_KEY_REUSED");
    const otherManifest = await ctx.alice.post("/api/runs", {
      manifest: otherPack,
      idempotencyKey: key,
    });
    assertProblem(otherManifest, 409, "idempotencyKey");
  });
});
