/**
 * Issue 20: approvals from an air-gapped site. A request exported through the gateway is signed
 * offline with the approver's own key and imported again; it counts towards the quorum like an
 * online approval. Every forgery and replay (bad signature, unknown approver, stale plan hash,
 * replay, expiry, another gate or run, an invented request, a missing group) is refused with its
 * stable code and recorded in the run's evidence. The bundle of such a run verifies offline with
 * the pack source and the offline approvals inside, and the approvers' DSSE envelopes verify
 * with OpenSSL.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  type ApprovalResponse,
  approvalResponsePayloadType,
  bundlePaths,
  generateSigningKeyPem,
  loadSigningKey,
  parseApprovalRequest,
  readTarGz,
  type SigningKey,
  serializeEnvelope,
  signApprovalResponse,
  signEnvelope,
} from "@packrun/attestation";
import pg from "pg";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type CliRun, runCli } from "../../packages/cli/src/testing/run-cli.ts";
import {
  eventsWhen,
  manifest,
  type RunEventJson,
  type RunJson,
  submitRun,
  useSecurityStack,
  waitForRun,
} from "./support/stack.ts";

const exec = promisify(execFile);

/** Two distinct approvers of group release-managers are needed at gate `release-gate`. */
const quorumPack = manifest(
  "offline-approval",
  `  inputs: [{name: target, type: string, default: prod-eu}]
  approvals: [{id: release, required: 2, grants: [release-managers], reason: "ship the release"}]
  steps:
    - id: build
      run: {uses: builtin:noop}
    - id: release-gate
      gate: {approval: {id: release}}
    - id: after
      run: {uses: builtin:noop}
`,
);

/** Two gates sharing an approval (staging, then prod), one approver each. */
const twoGates = manifest(
  "offline-two-gates",
  `  approvals: [{id: release, grants: [release-managers]}]
  steps:
    - id: staging
      gate: {approval: {id: release}}
    - id: prod
      gate: {approval: {id: release}}
`,
);

const ctx = useSecurityStack();
let dir: string;
let token: string;
let evidenceKeys: string;
const approvers: Record<"alice" | "bob" | "mallory" | "stranger", SigningKey> = {
  alice: loadSigningKey(generateSigningKeyPem("ed25519")),
  bob: loadSigningKey(generateSigningKeyPem("ecdsa-p256")),
  // Configured, but not in the gate's group.
  mallory: loadSigningKey(generateSigningKeyPem("ed25519")),
  // Configured for another tenant only.
  stranger: loadSigningKey(generateSigningKeyPem("ed25519")),
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-offline-"));
  for (const [name, key] of Object.entries(approvers)) {
    await writeFile(
      join(dir, `${name}.key.pem`),
      key.privateKey.export({ type: "pkcs8", format: "pem" }),
    );
    await writeFile(join(dir, `${name}.pub.pem`), key.publicKeyPem);
  }
  // The embedded default reads <home>/approver-keys.json at every import.
  await writeFile(
    join(ctx.stack.home, "approver-keys.json"),
    JSON.stringify({
      tenants: {
        acme: [
          {
            approver: "alice@example.com",
            groups: ["release-managers"],
            publicKeyFile: join(dir, "alice.pub.pem"),
          },
          {
            approver: "bob@example.com",
            groups: ["release-managers", "ops"],
            publicKey: approvers.bob.publicKeyPem,
            keyId: approvers.bob.keyId,
          },
          {
            approver: "mallory@example.com",
            groups: ["interns"],
            publicKey: approvers.mallory.publicKeyPem,
          },
        ],
        other: [
          {
            approver: "stranger@other",
            groups: ["release-managers"],
            publicKey: approvers.stranger.publicKeyPem,
          },
        ],
      },
    }),
  );
  token = await ctx.stack.mintToken({ subject: "operator" });
  const published = await fetch(`${ctx.stack.url}/.well-known/packrun/signing-keys`);
  assert.equal(published.status, 200);
  evidenceKeys = join(dir, "packrun-keys.jwks.json");
  await writeFile(evidenceKeys, await published.text());
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cli(args: readonly string[]): Promise<CliRun> {
  return runCli(args, {
    cwd: dir,
    env: {
      PACKRUN_HOME: dir,
      PACKRUN_URL: ctx.stack.url,
      PACKRUN_TOKEN: token,
      PACKRUN_TRUSTED_KEYS: "",
    },
  });
}

async function awaitingGate(pack: string, gate: string): Promise<RunJson> {
  const run = await submitRun(ctx.alice, { manifest: pack });
  return waitForRun(ctx.alice, run.id, (r) =>
    r.gates.some((g) => g.stepId === gate && g.state === "awaiting-approval"),
  );
}

/** Exports a request through REST; returns its envelope text as the CLI would write it. */
async function exportRequest(runId: string, gate: string): Promise<string> {
  const answer = await ctx.alice.post<{ envelope: unknown; requestId: string }>(
    `/api/runs/${runId}/gates/${gate}/approval-request`,
    {},
  );
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return JSON.stringify(answer.body.envelope);
}

function signed(requestText: string, key: SigningKey, approve = true, comment = ""): string {
  const request = parseApprovalRequest(requestText);
  assert.ok(request.ok, request.ok ? "" : request.reason);
  return signApprovalResponse(request, { approve, comment }, key);
}

/** A response to `requestText` with fields changed, signed by `key` (a forger's own response). */
function forged(requestText: string, key: SigningKey, change: Partial<ApprovalResponse>): string {
  const original = JSON.parse(
    Buffer.from(JSON.parse(signed(requestText, key)).payload, "base64").toString("utf8"),
  ) as ApprovalResponse;
  return serializeEnvelope(
    signEnvelope(
      approvalResponsePayloadType,
      Buffer.from(JSON.stringify({ ...original, ...change })),
      key,
    ),
  );
}

async function importResponse(text: string) {
  return ctx.alice.post<{
    recorded?: boolean;
    code?: string;
    detail?: string;
    approver?: string;
    gate?: RunJson["gates"][number];
  }>("/api/approvals/import", JSON.parse(text));
}

async function refusalsOf(runId: string, count: number): Promise<RunEventJson[]> {
  const events = await eventsWhen(
    ctx.stack.url,
    token,
    runId,
    (log) => log.filter((e) => e.type === "gate.approval_refused").length >= count,
  );
  return events.filter((e) => e.type === "gate.approval_refused");
}

describe("the offline path", () => {
  test("export → sign offline (Ed25519 and P-256) → import meets the quorum; the bundle verifies with the pack source and both responses", async () => {
    const run = await awaitingGate(quorumPack, "release-gate");
    const request = join(dir, `${run.id}.request.json`);
    const exported = await cli([
      "approvals",
      "export",
      run.id,
      "release-gate",
      "-o",
      request,
      "--ttl",
      "2h",
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /exported approval request [0-9a-f-]{36} for gate release-gate/);

    // The request as the approver sees it: run, gate, plan, inputs, quorum, expiry.
    const parsed = parseApprovalRequest(await readFile(request, "utf8"));
    assert.ok(parsed.ok);
    assert.equal(parsed.value.runId, run.id);
    assert.equal(parsed.value.planHash, run.planHash);
    assert.deepEqual(parsed.value.gate.grants, ["release-managers"]);
    assert.equal(parsed.value.quorum.required, 2);
    assert.deepEqual(
      parsed.value.inputs.map((input) => [input.name, input.value]),
      [["target", "prod-eu"]],
    );
    const ttl = Date.parse(parsed.value.expiresAt) - Date.parse(parsed.value.issuedAt);
    assert.equal(ttl, 2 * 3600 * 1000);

    // Offline: no gateway in the environment at all.
    const offline = (args: string[]) =>
      runCli(args, {
        cwd: dir,
        env: {
          PACKRUN_HOME: dir,
          PACKRUN_URL: "http://127.0.0.1:9",
          PACKRUN_TOKEN: "",
          PACKRUN_TRUSTED_KEYS: "",
        },
      });
    const untrusted = await offline([
      "approvals",
      "sign",
      request,
      "--key",
      "alice.key.pem",
      "-o",
      "x.json",
    ]);
    assert.equal(untrusted.code, 6, untrusted.stderr);
    const wrongTrust = await offline([
      "approvals",
      "sign",
      request,
      "--key",
      "alice.key.pem",
      "--trust",
      "bob.pub.pem",
      "-o",
      "x.json",
    ]);
    assert.equal(wrongTrust.code, 7, wrongTrust.stderr);
    const aliceResponse = join(dir, `${run.id}.alice.json`);
    const aliceSigned = await offline([
      "approvals",
      "sign",
      request,
      "--key",
      "alice.key.pem",
      "--trust",
      evidenceKeys,
      "-c",
      "checked the scan",
      "-o",
      aliceResponse,
    ]);
    assert.equal(aliceSigned.code, 0, aliceSigned.stderr);
    assert.match(aliceSigned.stderr, /request signature: verified/);
    assert.match(aliceSigned.stderr, /target = "prod-eu"/);
    const bobResponse = join(dir, `${run.id}.bob.json`);
    const bobSigned = await offline([
      "approvals",
      "sign",
      request,
      "--key",
      "bob.key.pem",
      "--trust",
      evidenceKeys,
      "-o",
      bobResponse,
    ]);
    assert.equal(bobSigned.code, 0, bobSigned.stderr);

    const first = await cli(["approvals", "import", aliceResponse]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /approved gate release-gate of run .* as alice@example\.com: 1\/2 approvals, gate awaiting-approval/,
    );
    const second = await cli(["approvals", "import", bobResponse, "--format", "json"]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(JSON.parse(second.stdout).approver, "bob@example.com");

    const done = await waitForRun(ctx.alice, run.id);
    assert.equal(done.state, "succeeded");
    const gate = done.gates.find((g) => g.stepId === "release-gate");
    assert.deepEqual(gate?.decisions.map((d) => [d.approver, d.approved, d.comment ?? ""]).sort(), [
      ["alice@example.com", true, "checked the scan"],
      ["bob@example.com", true, ""],
    ]);

    // The bundle: verified offline with the published keys, pack.yaml inside and bound.
    const bundlePath = join(dir, `${run.id}.tar.gz`);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const response = await fetch(`${ctx.stack.url}/api/runs/${run.id}/bundle`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (response.status === 200) {
        await writeFile(bundlePath, Buffer.from(await response.arrayBuffer()));
        break;
      }
      await response.body?.cancel();
      if (Date.now() > deadline) assert.fail(`no bundle for run ${run.id}: ${response.status}`);
      await sleep(200);
    }
    const verified = await cli(["verify", bundlePath, "--key", evidenceKeys, "--format", "json"]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const report = JSON.parse(verified.stdout) as {
      ok: boolean;
      checks: { check: string; member?: string; ok: boolean }[];
    };
    assert.ok(report.ok);
    const offlineChecks = report.checks.filter((c) => c.check === "offline-approval");
    assert.equal(offlineChecks.length, 2, JSON.stringify(report.checks));
    assert.ok(offlineChecks.every((c) => c.ok));
    const packCheck = report.checks.find((c) => c.check === "pack-source");
    assert.equal(packCheck?.member, "pack.yaml");
    assert.equal(packCheck?.ok, true);
    const archive = await readTarGz(await readFile(bundlePath));
    assert.ok(archive.ok);
    assert.equal(archive.members.get(bundlePaths.packSource)?.toString("utf8"), quorumPack);
    const statement = JSON.parse(
      Buffer.from(
        JSON.parse(archive.members.get(bundlePaths.attestation)?.toString("utf8") ?? "").payload,
        "base64",
      ).toString("utf8"),
    );
    assert.equal(
      statement.predicate.pack.digest,
      `sha256:${createHash("sha256").update(quorumPack).digest("hex")}`,
    );
    assert.equal(statement.predicate.planHash, run.planHash);

    // Both responses, verbatim, in the signed transcript; each verifies with OpenSSL.
    const transcript = (archive.members.get(bundlePaths.transcript)?.toString("utf8") ?? "")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; metadata: Record<string, string> });
    const approved = transcript.filter((e) => e.type === "gate.approved");
    assert.equal(approved.length, 2);
    for (const [name, file] of [
      ["alice", aliceResponse],
      ["bob", bobResponse],
    ] as const) {
      const written = await readFile(file, "utf8");
      const event = approved.find((e) => e.metadata.approver === `${name}@example.com`);
      assert.equal(event?.metadata.response, written, `${name}'s response is recorded verbatim`);
      assert.equal(event?.metadata.offline, "true");
      assert.equal(event?.metadata.keyId, approvers[name].keyId);
      await opensslVerify(written, join(dir, `${name}.pub.pem`));
    }
    // And a flipped payload byte fails OpenSSL: the check can fail.
    const tampered = JSON.parse(await readFile(aliceResponse, "utf8"));
    tampered.payload = Buffer.from(
      Buffer.from(tampered.payload, "base64").toString("utf8").replace("approve", "reject!"),
    ).toString("base64");
    await assert.rejects(opensslVerify(JSON.stringify(tampered), join(dir, "alice.pub.pem")));
  });
});

/** Verifies a DSSE envelope's first signature with OpenSSL 3 over its PAE, as docs/security.md shows. */
async function opensslVerify(envelopeText: string, publicKeyFile: string): Promise<void> {
  const envelope = JSON.parse(envelopeText) as {
    payloadType: string;
    payload: string;
    signatures: { sig: string }[];
  };
  const payload = Buffer.from(envelope.payload, "base64");
  const pae = Buffer.concat([
    Buffer.from(
      `DSSEv1 ${Buffer.byteLength(envelope.payloadType)} ${envelope.payloadType} ${payload.length} `,
    ),
    payload,
  ]);
  const work = await mkdtemp(join(tmpdir(), "packrun-openssl-"));
  try {
    await writeFile(join(work, "pae"), pae);
    await writeFile(join(work, "sig"), Buffer.from(envelope.signatures[0]?.sig ?? "", "base64"));
    const text = (
      await exec("openssl", ["pkey", "-pubin", "-in", publicKeyFile, "-noout", "-text"])
    ).stdout;
    if (text.includes("ED25519"))
      await exec("openssl", [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        publicKeyFile,
        "-rawin",
        "-in",
        join(work, "pae"),
        "-sigfile",
        join(work, "sig"),
      ]);
    else
      await exec("openssl", [
        "dgst",
        "-sha256",
        "-verify",
        publicKeyFile,
        "-signature",
        join(work, "sig"),
        join(work, "pae"),
      ]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

describe("forgeries and replays are refused with stable codes and recorded in the evidence", () => {
  test("bad signature, unknown approver, stale plan hash, invented request, missing group", async () => {
    const run = await awaitingGate(quorumPack, "release-gate");
    const request = await exportRequest(run.id, "release-gate");

    // A configured key id, but the payload was changed after signing.
    const genuine = JSON.parse(signed(request, approvers.alice));
    const payload = JSON.parse(Buffer.from(genuine.payload, "base64").toString("utf8"));
    payload.comment = "changed after signing";
    const altered = {
      ...genuine,
      payload: Buffer.from(JSON.stringify(payload)).toString("base64"),
    };
    const badSignature = await importResponse(JSON.stringify(altered));
    assert.equal(badSignature.status, 403, JSON.stringify(badSignature.body));
    assert.equal(badSignature.body.code, "APPROVAL_SIGNATURE_INVALID");

    // Signed by keys acme does not know: a stranger's (configured for tenant other) and a fresh one.
    const stranger = await importResponse(signed(request, approvers.stranger));
    assert.equal(stranger.status, 403, JSON.stringify(stranger.body));
    assert.equal(stranger.body.code, "APPROVER_UNKNOWN");
    const fresh = await importResponse(
      signed(request, loadSigningKey(generateSigningKeyPem("ecdsa-p256"))),
    );
    assert.equal(fresh.body.code, "APPROVER_UNKNOWN");

    // A genuine approver's signature over another plan hash.
    const stale = await importResponse(
      forged(request, approvers.alice, { planHash: `sha256:${"0".repeat(64)}` }),
    );
    assert.equal(stale.status, 403, JSON.stringify(stale.body));
    assert.equal(stale.body.code, "APPROVAL_STALE");

    // A request this tenant never exported.
    const invented = await importResponse(
      forged(request, approvers.alice, { requestId: randomUUID() }),
    );
    assert.equal(invented.status, 404, JSON.stringify(invented.body));
    assert.equal(invented.body.code, "APPROVAL_REQUEST_UNKNOWN");

    // The right request id, but not its nonce or digest (a response to a look-alike request).
    const nonce = await importResponse(forged(request, approvers.alice, { nonce: "A".repeat(43) }));
    assert.equal(nonce.status, 403, JSON.stringify(nonce.body));
    assert.equal(nonce.body.code, "APPROVAL_TOKEN_MISMATCH");
    const digest = await importResponse(
      forged(request, approvers.alice, { requestDigest: `sha256:${"1".repeat(64)}` }),
    );
    assert.equal(digest.body.code, "APPROVAL_TOKEN_MISMATCH");

    // A configured approver outside the gate's group.
    const outsider = await importResponse(signed(request, approvers.mallory));
    assert.equal(outsider.status, 403, JSON.stringify(outsider.body));
    assert.equal(outsider.body.code, "PERMISSION_DENIED");

    // Not a response at all: refused before anything names a run.
    const junk = await ctx.alice.post<{ code: string }>("/api/approvals/import", {
      payloadType: "application/vnd.in-toto+json",
      payload: "e30=",
      signatures: [{ keyid: "", sig: "AA==" }],
    });
    assert.equal(junk.status, 400, JSON.stringify(junk.body));
    assert.equal(junk.body.code, "APPROVAL_RESPONSE_INVALID");

    const refusals = await refusalsOf(run.id, 8);
    const codes = refusals.map((e) => (e.metadata as Record<string, string>).code).sort();
    assert.deepEqual(codes, [
      "APPROVAL_REQUEST_UNKNOWN",
      "APPROVAL_SIGNATURE_INVALID",
      "APPROVAL_STALE",
      "APPROVAL_TOKEN_MISMATCH",
      "APPROVAL_TOKEN_MISMATCH",
      "APPROVER_UNKNOWN",
      "APPROVER_UNKNOWN",
      "PERMISSION_DENIED",
    ]);
    for (const refusal of refusals) {
      const metadata = refusal.metadata as Record<string, string>;
      assert.equal(metadata.offline, "true");
      // The key id is recorded once the signature verified with a configured key.
      const verified = !["APPROVAL_SIGNATURE_INVALID", "APPROVER_UNKNOWN"].includes(
        metadata.code ?? "",
      );
      assert.equal(
        metadata.keyId,
        verified
          ? approvers[metadata.code === "PERMISSION_DENIED" ? "mallory" : "alice"].keyId
          : undefined,
        JSON.stringify(metadata),
      );
      assert.match(
        metadata.response ?? "",
        /"payloadType": "application\/vnd\.packrun\.approval-response\+json"/,
      );
      assert.equal(
        metadata.responseDigest,
        `sha256:${createHash("sha256")
          .update(metadata.response ?? "")
          .digest("hex")}`,
      );
    }
    // None of them counted.
    const still = await waitForRun(ctx.alice, run.id, () => true);
    assert.equal(still.gates.find((g) => g.stepId === "release-gate")?.decisions.length, 0);
    assert.equal(still.state, "awaiting-approval");
  });

  test("replay, reuse for another gate or run, and expiry", async () => {
    const run = await awaitingGate(twoGates, "staging");
    const stagingRequest = await exportRequest(run.id, "staging");
    const response = signed(stagingRequest, approvers.alice);

    // Re-pointed at the prod gate and re-signed: answers no request of that gate.
    const otherGate = await importResponse(
      forged(stagingRequest, approvers.alice, { gateStepId: "prod" }),
    );
    assert.equal(otherGate.status, 403, JSON.stringify(otherGate.body));
    assert.equal(otherGate.body.code, "APPROVAL_TOKEN_MISMATCH");

    // Re-pointed at another run of the tenant.
    const other = await awaitingGate(twoGates, "staging");
    const otherRun = await importResponse(
      forged(stagingRequest, approvers.alice, { runId: other.id }),
    );
    assert.equal(otherRun.status, 403, JSON.stringify(otherRun.body));
    assert.equal(otherRun.body.code, "APPROVAL_TOKEN_MISMATCH");

    const accepted = await importResponse(response);
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    assert.equal(accepted.body.approver, "alice@example.com");
    const atProd = await waitForRun(ctx.alice, run.id, (r) =>
      r.gates.some((g) => g.stepId === "prod" && g.state === "awaiting-approval"),
    );

    // The same response again, now that prod waits: single use, prod stays closed.
    const replay = await importResponse(response);
    assert.equal(replay.status, 409, JSON.stringify(replay.body));
    assert.equal(replay.body.code, "APPROVAL_TOKEN_REUSED");

    // An expired request: its response is refused, however genuine.
    const prodRequest = await exportRequest(run.id, "prod");
    const requestId = (parseApprovalRequest(prodRequest) as { value: { requestId: string } }).value
      .requestId;
    const db = new pg.Client({ connectionString: ctx.stack.databaseUrl });
    await db.connect();
    try {
      await db.query(
        "UPDATE executor.approval_requests SET expires_at = now() - interval '1 second' WHERE request_id = $1",
        [requestId],
      );
    } finally {
      await db.end();
    }
    const expired = await importResponse(signed(prodRequest, approvers.bob));
    assert.equal(expired.status, 403, JSON.stringify(expired.body));
    assert.equal(expired.body.code, "APPROVAL_EXPIRED");

    const refusals = await refusalsOf(run.id, 4);
    assert.deepEqual(
      refusals.map((e) => [(e.metadata as Record<string, string>).code, e.stepId]).sort(),
      [
        ["APPROVAL_EXPIRED", "prod"],
        ["APPROVAL_TOKEN_MISMATCH", "staging"],
        ["APPROVAL_TOKEN_MISMATCH", "staging"],
        ["APPROVAL_TOKEN_REUSED", "staging"],
      ],
    );
    // The other run saw nothing of it.
    const untouched = await waitForRun(ctx.alice, other.id, () => true);
    assert.equal(untouched.gates.find((g) => g.stepId === "staging")?.decisions.length, 0);
    const prod = (await waitForRun(ctx.alice, atProd.id, () => true)).gates.find(
      (g) => g.stepId === "prod",
    );
    assert.equal(prod?.state, "awaiting-approval");
    assert.equal(prod?.decisions.length, 0);

    // A fresh request for prod, signed by bob, finishes the run.
    const last = await importResponse(signed(await exportRequest(run.id, "prod"), approvers.bob));
    assert.equal(last.status, 200, JSON.stringify(last.body));
    assert.equal((await waitForRun(ctx.alice, run.id)).state, "succeeded");
  });

  test("an offline approval counts like an online one: the same approver once, towards one quorum", async () => {
    const run = await awaitingGate(quorumPack, "release-gate");
    const online = await ctx.stack.client({
      subject: "alice@example.com",
      groups: ["release-managers"],
      approval: { runId: run.id, gateId: "release-gate", planHash: run.planHash },
    });
    const decided = await online.post<{ recorded: boolean }>(`/api/runs/${run.id}/approve`, {});
    assert.equal(decided.status, 200, JSON.stringify(decided.body));
    // Alice again, offline, on a request exported after her online approval.
    const request = await exportRequest(run.id, "release-gate");
    const parsed = parseApprovalRequest(request);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.value.quorum, { required: 2, approvedBy: ["alice@example.com"] });
    const again = await importResponse(signed(request, approvers.alice));
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.recorded, false);
    assert.equal(again.body.gate?.state, "awaiting-approval");
    assert.equal(again.body.gate?.decisions.length, 1);
    const bob = await importResponse(signed(request, approvers.bob, true, "second pair of eyes"));
    assert.equal(bob.status, 200, JSON.stringify(bob.body));
    assert.equal(bob.body.recorded, true);
    assert.equal((await waitForRun(ctx.alice, run.id)).state, "succeeded");
  });

  test("an offline rejection rejects the gate and fails the run", async () => {
    const run = await awaitingGate(quorumPack, "release-gate");
    const request = await exportRequest(run.id, "release-gate");
    const rejected = await importResponse(signed(request, approvers.bob, false, "scan not clean"));
    assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
    const done = await waitForRun(ctx.alice, run.id);
    assert.equal(done.state, "failed");
    const gate = done.gates.find((g) => g.stepId === "release-gate");
    assert.equal(gate?.state, "rejected");
    assert.deepEqual(
      gate?.decisions.map((d) => [d.approver, d.approved, d.comment]),
      [["bob@example.com", false, "scan not clean"]],
    );
  });

  test("exports: only gates awaiting approval, another tenant's run is not found", async () => {
    const run = await awaitingGate(twoGates, "staging");
    const notYet = await ctx.alice.post<{ code: string }>(
      `/api/runs/${run.id}/gates/prod/approval-request`,
      {},
    );
    assert.equal(notYet.status, 409, JSON.stringify(notYet.body));
    assert.equal(notYet.body.code, "GATE_NOT_AWAITING");
    const ambiguous = await ctx.alice.post<{ code: string }>(
      `/api/runs/${run.id}/gates/release/approval-request`,
      {},
    );
    assert.equal(ambiguous.status, 403, JSON.stringify(ambiguous.body));
    assert.equal(ambiguous.body.code, "APPROVAL_TOKEN_MISMATCH");
    const otherTenant = await ctx.stack.client({ tenant: "other" });
    const hidden = await otherTenant.post<{ code: string }>(
      `/api/runs/${run.id}/gates/staging/approval-request`,
      {},
    );
    assert.equal(hidden.status, 404, JSON.stringify(hidden.body));
    // A response for acme's run imported by tenant other, signed by other's own approver.
    const response = signed(await exportRequest(run.id, "staging"), approvers.stranger);
    const crossTenant = await otherTenant.post<{ code: string }>(
      "/api/approvals/import",
      JSON.parse(response),
    );
    assert.equal(crossTenant.status, 404, JSON.stringify(crossTenant.body));
    assert.equal(crossTenant.body.code, "APPROVAL_REQUEST_UNKNOWN");
    const readOnly = await ctx.stack.client({ scopes: ["packs.read"] });
    const denied = await readOnly.post<{ code: string }>(
      `/api/runs/${run.id}/gates/staging/approval-request`,
      {},
    );
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
  });
});
