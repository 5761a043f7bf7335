/**
 * Issue 8, item 16: forged, misbound and under-scoped tokens through the REST gateway.
 *
 * Every refused request answers 401 (not authenticated) or 403 (authenticated but not allowed)
 * with a problem document, changes nothing (the run is re-read after each attack), and leaves a
 * trace: the gateway's `request refused` audit line for every 401/403, and additionally a
 * `gate.approval_refused` event in the run's evidence log for refused approval decisions of the
 * caller's own tenant.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RestClient } from "../../services/gateway/src/testing/rest-client.ts";
import { restClient } from "../../services/gateway/src/testing/rest-client.ts";
import {
  eventsWhen,
  manifest,
  type RunJson,
  type SecurityStack,
  startSecurityStack,
  submitRun,
  waitForRun,
} from "./support/stack.ts";

const twoGates = manifest(
  "two-gates",
  `  approvals: [{id: release, grants: [release-managers]}, {id: final}]
  steps:
    - id: prepare
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo prepared"]}}
    - id: release-gate
      gate: {approval: {id: release, message: "ship it?"}}
    - id: final-gate
      gate: {approval: {id: final, message: "really?"}}
    - id: deploy
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo deployed"]}}
`,
);

let stack: SecurityStack;
let alice: RestClient;
let run: RunJson;
let binding: { runId: string; gateId: string; planHash: string };
const nowSeconds = () => Math.floor(Date.now() / 1000);

const b64url = (value: string | Uint8Array) => Buffer.from(value).toString("base64url");

/** A JWS in compact form from raw parts: nothing checks what the header claims. */
function compact(header: object, payload: object, signature: Uint8Array | string = ""): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${typeof signature === "string" ? signature : b64url(signature)}`;
}

/** The claims a valid approval token for `binding` carries (tenant acme, every scope). */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    iss: stack.issuer,
    aud: stack.audience,
    sub: "mallory",
    tenant: "acme",
    scope: "packs.read packs.write packs.run packs.approve",
    groups: ["release-managers"],
    pack_run_id: binding.runId,
    pack_gate_id: binding.gateId,
    pack_plan_hash: binding.planHash,
    iat: nowSeconds(),
    exp: nowSeconds() + 600,
    jti: crypto.randomUUID(),
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[key];
    else base[key] = value;
  }
  return base;
}

/** Signs `payload` with the trusted key (a legitimate signature over whatever claims). */
async function signTrusted(payload: Record<string, unknown>): Promise<string> {
  const jwk = stack.privateJwk;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "ES256", kid: jwk.kid ?? "" })
    .sign(await importJWK(jwk, "ES256"));
}

const trustedKid = () => stack.privateJwk.kid ?? "";

function publicJwk(): JWK {
  const key = stack.jwks.keys[0];
  assert.ok(key !== undefined, "the stack trusts one key");
  return key;
}

/** The state that must not move: the run, its steps and its gates' decisions. */
async function snapshot(): Promise<unknown> {
  const { status, body } = await alice.get<RunJson>(`/api/runs/${run.id}`);
  assert.equal(status, 200);
  return {
    state: body.state,
    steps: body.steps.map((step) => [step.id, step.state, step.attempts.length]),
    gates: body.gates.map((gate) => [gate.gateId, gate.state, gate.decisions.length]),
  };
}

async function runCount(): Promise<number> {
  const { body } = await alice.get<{ runs: RunJson[] }>("/api/runs?pageSize=200");
  return body.runs.length;
}

/** Sends the attack and checks status, problem document and code. */
async function expectRefused(
  attempt: Promise<{ status: number; headers: Headers; body: unknown }>,
  status: number,
  code: string,
  what: string,
): Promise<void> {
  const response = await attempt;
  const body = response.body as { code?: string; status?: number; detail?: string };
  assert.equal(response.status, status, `${what}: ${JSON.stringify(body)}`);
  assert.match(response.headers.get("content-type") ?? "", /application\/problem\+json/, what);
  assert.equal(body.code, code, `${what}: ${JSON.stringify(body)}`);
  assert.equal(body.status, status, what);
  if (status === 401)
    assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer/, `${what}: challenge`);
}

beforeAll(async () => {
  stack = await startSecurityStack();
  alice = await stack.client({ groups: ["release-managers"] });
  run = await submitRun(alice, { manifest: twoGates });
  run = await waitForRun(alice, run.id, (r) => r.state === "awaiting-approval");
  assert.deepEqual(run.pendingGates, ["release"]);
  binding = { runId: run.id, gateId: "release", planHash: run.planHash };
});
afterAll(() => stack.close());

describe("forged and invalid bearer tokens get 401 and change nothing", () => {
  const cases: [string, () => Promise<string>][] = [
    ["alg none, no signature", async () => compact({ alg: "none", typ: "JWT" }, claims())],
    [
      "alg none with the trusted kid and a leftover signature",
      async () => {
        const [, , signature] = (await signTrusted(claims())).split(".");
        return compact({ alg: "none", kid: trustedKid() }, claims(), signature);
      },
    ],
    [
      "alg NONE (case games)",
      async () => compact({ alg: "NONE", kid: trustedKid() }, claims(), ""),
    ],
    [
      "HS256 keyed with the trusted public JWK's JSON (algorithm confusion)",
      async () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: "HS256", kid: trustedKid() })
          .sign(new TextEncoder().encode(JSON.stringify(publicJwk()))),
    ],
    [
      "HS256 keyed with the trusted public key's x coordinate bytes",
      async () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: "HS256", kid: trustedKid() })
          .sign(Buffer.from(publicJwk().x ?? "", "base64url")),
    ],
    [
      "HS256 with a random secret",
      async () => new SignJWT(claims()).setProtectedHeader({ alg: "HS256" }).sign(randomBytes(32)),
    ],
    [
      "ES256 by a foreign key claiming the trusted kid",
      async () => {
        const { privateKey } = await generateKeyPair("ES256");
        return new SignJWT(claims())
          .setProtectedHeader({ alg: "ES256", kid: trustedKid() })
          .sign(privateKey);
      },
    ],
    [
      "RS256 by a foreign key",
      async () => {
        const { privateKey } = await generateKeyPair("RS256");
        return new SignJWT(claims())
          .setProtectedHeader({ alg: "RS256", kid: trustedKid() })
          .sign(privateKey);
      },
    ],
    [
      "a foreign key that ships its own public key in the header (jwk injection)",
      async () => {
        const { privateKey, publicKey } = await generateKeyPair("ES256");
        return new SignJWT(claims())
          .setProtectedHeader({ alg: "ES256", jwk: await exportJWK(publicKey) })
          .sign(privateKey);
      },
    ],
    [
      "a trusted signature over other claims (tenant changed after signing)",
      async () => {
        const [header, , signature] = (await signTrusted(claims())).split(".");
        return `${header}.${b64url(JSON.stringify(claims({ tenant: "globex" })))}.${signature}`;
      },
    ],
    ["wrong issuer", () => signTrusted(claims({ iss: "https://evil.example" }))],
    ["wrong audience", () => signTrusted(claims({ aud: "some-other-service" }))],
    [
      "expired 60 s ago (beyond the 30 s clock tolerance)",
      () => signTrusted(claims({ iat: nowSeconds() - 3600, exp: nowSeconds() - 60 })),
    ],
    ["not valid for another 120 s (nbf)", () => signTrusted(claims({ nbf: nowSeconds() + 120 }))],
    ["no subject", () => signTrusted(claims({ sub: undefined }))],
    ["no expiry", () => signTrusted(claims({ exp: undefined }))],
    ["no tenant", () => signTrusted(claims({ tenant: undefined }))],
    ["a tenant with forbidden characters", () => signTrusted(claims({ tenant: "acme\nglobex" }))],
    ["garbage", async () => "not-a-jwt"],
  ];

  for (const [name, make] of cases) {
    test(name, async () => {
      const before = await snapshot();
      const token = await make();
      const attacker = restClient(stack.url, token);
      await expectRefused(
        attacker.post(`/api/runs/${run.id}/approve`, {}),
        401,
        "UNAUTHENTICATED",
        `${name}: approve`,
      );
      await expectRefused(
        attacker.get(`/api/runs/${run.id}`),
        401,
        "UNAUTHENTICATED",
        `${name}: read`,
      );
      await expectRefused(
        attacker.post(`/api/runs/${run.id}/cancel`, {}),
        401,
        "UNAUTHENTICATED",
        `${name}: cancel`,
      );
      assert.deepEqual(await snapshot(), before, `${name}: nothing changed`);
    });
  }

  test("no Authorization header, or not a bearer token", async () => {
    const before = await snapshot();
    await expectRefused(
      restClient(stack.url, undefined).post(`/api/runs/${run.id}/approve`, {}),
      401,
      "UNAUTHENTICATED",
      "anonymous",
    );
    await expectRefused(
      restClient(stack.url, undefined).post(
        `/api/runs/${run.id}/approve`,
        {},
        { authorization: `Basic ${b64url("alice:secret")}` },
      ),
      401,
      "UNAUTHENTICATED",
      "basic auth",
    );
    assert.deepEqual(await snapshot(), before);
  });

  test("within the 30 s clock tolerance an expired token is still accepted (control)", async () => {
    const token = await signTrusted(claims({ exp: nowSeconds() - 10 }));
    const { status } = await restClient(stack.url, token).get(`/api/runs/${run.id}`);
    assert.equal(status, 200);
  });

  test("every 401 left a `request refused` audit line without the token", async () => {
    const refused = stack
      .logLines()
      .filter((line) => line.msg === "request refused" && line.code === "UNAUTHENTICATED");
    // 19 cases × 3 requests + 2 anonymous ones.
    assert.ok(refused.length >= cases.length * 3 + 2, `${refused.length} audit lines`);
    const text = JSON.stringify(stack.logLines());
    assert.ok(!text.includes("eyJ"), "no token (or part of one) is logged");
  });
});

describe("a valid token without the needed scope gets 403 and changes nothing", () => {
  test("packs.read only: cannot submit, cancel, publish or approve", async () => {
    const reader = restClient(
      stack.url,
      await signTrusted(claims({ scope: "packs.read", sub: "rita" })),
    );
    const before = await snapshot();
    const runsBefore = await runCount();
    await expectRefused(
      reader.post("/api/runs", { manifest: twoGates }),
      403,
      "PERMISSION_DENIED",
      "submit",
    );
    await expectRefused(
      reader.post(`/api/runs/${run.id}/cancel`, {}),
      403,
      "PERMISSION_DENIED",
      "cancel",
    );
    await expectRefused(reader.post("/api/packs", twoGates), 403, "PERMISSION_DENIED", "publish");
    await expectRefused(
      reader.post(`/api/runs/${run.id}/approve`, {}),
      403,
      "PERMISSION_DENIED",
      "approve",
    );
    // Reading is what the scope allows.
    assert.equal((await reader.get(`/api/runs/${run.id}`)).status, 200);
    assert.equal(await runCount(), runsBefore, "no run was created");
    assert.deepEqual((await alice.get<{ packs: unknown[] }>("/api/packs")).body.packs, []);
    assert.deepEqual(await snapshot(), before);
  });

  test("packs.run without packs.approve cannot approve, even with a correctly bound token", async () => {
    const runner = restClient(
      stack.url,
      await signTrusted(claims({ scope: "packs.read packs.run", sub: "rupert" })),
    );
    const before = await snapshot();
    await expectRefused(
      runner.post(`/api/runs/${run.id}/approve`, {}),
      403,
      "PERMISSION_DENIED",
      "approve without scope",
    );
    assert.deepEqual(await snapshot(), before);
    const audit = stack
      .logLines()
      .filter((line) => line.msg === "request refused" && line.code === "PERMISSION_DENIED");
    assert.ok(
      audit.some((line) => line.subject === "rupert" || /approve/.test(String(line.detail))),
    );
  });

  test("no scope at all: cannot even read", async () => {
    const nobody = restClient(stack.url, await signTrusted(claims({ scope: "" })));
    await expectRefused(nobody.get(`/api/runs/${run.id}`), 403, "PERMISSION_DENIED", "read");
    await expectRefused(nobody.get("/api/runs"), 403, "PERMISSION_DENIED", "list");
  });
});

describe("approval tokens bound to something else are refused, recorded, and change nothing", () => {
  test("bound to another run, another plan, another (not awaiting) gate, a gate that does not exist; another tenant's token", async () => {
    const before = await snapshot();
    const bound = async (overrides: Record<string, unknown>, sub = "mallory") =>
      restClient(stack.url, await signTrusted(claims({ sub, ...overrides })));

    await expectRefused(
      (await bound({ pack_run_id: crypto.randomUUID() })).post(`/api/runs/${run.id}/approve`, {}),
      403,
      "APPROVAL_TOKEN_MISMATCH",
      "another run",
    );
    await expectRefused(
      (await bound({ pack_plan_hash: `sha256:${"1".repeat(64)}` })).post(
        `/api/runs/${run.id}/approve`,
        {},
      ),
      403,
      "APPROVAL_STALE",
      "another plan",
    );
    await expectRefused(
      (await bound({})).post(`/api/runs/${run.id}/approve`, { gateId: "final" }),
      403,
      "APPROVAL_TOKEN_MISMATCH",
      "body names another gate than the token",
    );
    await expectRefused(
      (await bound({ pack_gate_id: "final" })).post(`/api/runs/${run.id}/approve`, {}),
      409,
      "GATE_NOT_AWAITING",
      "another gate of the run, not awaiting yet",
    );
    await expectRefused(
      (await bound({ groups: ["interns"] })).post(`/api/runs/${run.id}/approve`, {}),
      403,
      "PERMISSION_DENIED",
      "without the gate's grant",
    );
    // Another tenant, even with a token bound to exactly this run, gate and plan: not found.
    await expectRefused(
      (await bound({ tenant: "globex" }, "eve")).post(`/api/runs/${run.id}/approve`, {}),
      404,
      "RUN_NOT_FOUND",
      "another tenant",
    );
    assert.deepEqual(await snapshot(), before, "nothing moved");

    const events = await eventsWhen(
      stack.url,
      await stack.mintToken(),
      run.id,
      (log) => log.filter((event) => event.type === "gate.approval_refused").length >= 5,
    );
    const refusals = events
      .filter((event) => event.type === "gate.approval_refused")
      .map((event) => [event.metadata?.code, event.metadata?.approver, event.level]);
    assert.deepEqual(refusals, [
      ["APPROVAL_TOKEN_MISMATCH", "mallory", "warn"],
      ["APPROVAL_STALE", "mallory", "warn"],
      ["APPROVAL_TOKEN_MISMATCH", "mallory", "warn"],
      ["GATE_NOT_AWAITING", "mallory", "warn"],
      ["PERMISSION_DENIED", "mallory", "warn"],
    ]);
    assert.ok(
      !events.some((event) => event.metadata?.approver === "eve" || event.message.includes("eve ")),
      "another tenant's attempt writes nothing into this tenant's evidence",
    );
  });

  test("a token bound to a gate id the run does not have is refused and recorded", async () => {
    const before = await snapshot();
    const token = await signTrusted(claims({ pack_gate_id: "no-such-gate", sub: "nina" }));
    const response = await restClient(stack.url, token).post(`/api/runs/${run.id}/approve`, {});
    assert.equal(response.status, 409);
    assert.deepEqual(await snapshot(), before);
    const events = await eventsWhen(
      stack.url,
      await stack.mintToken(),
      run.id,
      (log) =>
        log.some(
          (event) => event.type === "gate.approval_refused" && event.metadata?.approver === "nina",
        ),
      3000,
    ).catch(() => []);
    assert.ok(
      events.some(
        (event) => event.type === "gate.approval_refused" && event.metadata?.approver === "nina",
      ),
      "the refusal is in the run's evidence log",
    );
  });

  test("a replayed approval token is refused (single-use); the same approver counts once", async () => {
    const approver = restClient(
      stack.url,
      await signTrusted(claims({ sub: "rm-carol", scope: "packs.read packs.approve" })),
    );
    const first = await approver.post<{ recorded: boolean; gate: { state: string } }>(
      `/api/runs/${run.id}/approve`,
      { comment: "ok" },
    );
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.recorded, true);
    const afterFirst = await waitForRun(alice, run.id, (r) => r.pendingGates.includes("final"));
    for (let i = 0; i < 3; i++) {
      // The same token again: refused (issue 19), recorded, nothing changes.
      const replay = await approver.post<{ code: string }>(`/api/runs/${run.id}/approve`, {
        comment: "ok",
      });
      assert.equal(replay.status, 409, JSON.stringify(replay.body));
      assert.equal(replay.body.code, "APPROVAL_TOKEN_REUSED");
      // A new token of the same approver: the decision is already counted.
      const fresh = restClient(
        stack.url,
        await signTrusted(claims({ sub: "rm-carol", scope: "packs.read packs.approve" })),
      );
      const again = await fresh.post<{ recorded: boolean }>(`/api/runs/${run.id}/approve`, {
        comment: "ok",
      });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.recorded, false);
    }
    // Changing one's mind after the gate passed is refused, and recorded.
    const reject = await approver.post<{ code: string }>(`/api/runs/${run.id}/approve`, {
      approve: false,
    });
    assert.ok([403, 409].includes(reject.status), JSON.stringify(reject.body));
    const now = await alice.get<RunJson>(`/api/runs/${run.id}`);
    assert.deepEqual(
      now.body.gates.map((gate) => [gate.gateId, gate.state, gate.decisions.length]),
      afterFirst.gates.map((gate) => [gate.gateId, gate.state, gate.decisions.length]),
    );
    // Finish the run with the second gate, then the tokens of the first are useless.
    const finalApprover = restClient(
      stack.url,
      await signTrusted(claims({ sub: "rm-dave", pack_gate_id: "final" })),
    );
    assert.equal((await finalApprover.post(`/api/runs/${run.id}/approve`, {})).status, 200);
    const finished = await waitForRun(alice, run.id);
    assert.equal(finished.state, "succeeded");
    const late = await approver.post<{ recorded?: boolean; code?: string }>(
      `/api/runs/${run.id}/approve`,
      {},
    );
    assert.ok(
      (late.status === 200 && late.body.recorded === false) || late.status === 409,
      JSON.stringify(late.body),
    );
    assert.equal((await alice.get<RunJson>(`/api/runs/${run.id}`)).body.state, "succeeded");
    // The whole log, up to the terminal event: one decision per gate, each gate passed once.
    const events = await eventsWhen(stack.url, await stack.mintToken(), run.id, (log) =>
      log.some((event) => event.type === "run.succeeded"),
    );
    assert.deepEqual(
      events
        .filter((event) => event.type === "gate.approved")
        .map((event) => [event.metadata?.approvalId, event.metadata?.approver]),
      [
        ["release", "rm-carol"],
        ["final", "rm-dave"],
      ],
    );
    for (const gate of ["release-gate", "final-gate"])
      assert.equal(
        events.filter((e) => e.type === "step.succeeded" && e.stepId === gate).length,
        1,
        `${gate} passed once`,
      );
  });
});
