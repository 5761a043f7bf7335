import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { claimNames, generateLocalSigningKey, type LocalSigningKey } from "@packrun/auth";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, test } from "vitest";
import type { Artifact, Gate, Run } from "./api-types.ts";
import { findApprovalGate, mintApprovalToken, planApprovalToken } from "./approval-token.ts";
import { collectPages } from "./collect-pages.ts";
import { defaultArtifactFile, selectArtifact } from "./commands/artifacts.ts";
import { collectSecrets } from "./commands/run.ts";
import { parseScopes } from "./commands/token.ts";
import { resolveConnectionSettings } from "./connection-settings.ts";
import { ExitCode } from "./exit-codes.ts";
import { bearerToken } from "./gateway-options.ts";
import { mintLocalToken, readSigningKey } from "./local-token.ts";
import { integerOption, splitAssignment } from "./option-values.ts";
import { parsePackReference } from "./pack-reference.ts";

let dir: string;
let key: LocalSigningKey;
let keyFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "packrun-helpers-"));
  key = await generateLocalSigningKey();
  keyFile = path.join(dir, "dev.jwk.json");
  await writeFile(keyFile, JSON.stringify(key.privateJwk));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const devConfig = () => ({
  signingKeyFile: keyFile,
  issuer: "packrun-dev",
  audience: "packrun",
  tenant: "demo",
  subject: "operator",
});

async function verify(token: string) {
  const { payload } = await jwtVerify(token, createLocalJWKSet(key.jwks), {
    issuer: "packrun-dev",
    audience: "packrun",
  });
  return payload;
}

const gate: Gate = {
  stepId: "release-gate",
  gateId: "release",
  kind: "approval",
  state: "awaiting-approval",
  requiredApprovals: 1,
  grants: ["release-managers"],
  decisions: [],
};

const run: Run = {
  id: "run-1",
  pack: { name: "p", version: "1", digest: "sha256:d" },
  planHash: "sha256:plan",
  state: "awaiting-approval",
  priority: 0,
  createdAt: "2026-01-01T00:00:00Z",
  submittedBy: "alice",
  labels: {},
  steps: [],
  gates: [gate, { ...gate, stepId: "check", gateId: "no-critical", kind: "policy" }],
  pendingGates: ["release"],
};

test("pack references are NAME or NAME@VERSION", () => {
  assert.deepEqual(parsePackReference("image-scan"), { name: "image-scan" });
  assert.deepEqual(parsePackReference("image-scan@1.2.0"), {
    name: "image-scan",
    version: "1.2.0",
  });
  assert.throws(() => parsePackReference("@1.0.0"), /must be NAME or NAME@VERSION/);
  assert.throws(() => parsePackReference("x@"), /must be NAME or NAME@VERSION/);
});

test("secrets come from --secret, --secret-env and --secret-file, never echoing a value in errors", async () => {
  assert.equal(await collectSecrets({}), undefined);
  assert.deepEqual(
    await collectSecrets(
      { secret: ["token=s3cr=t", "other=x"], secretEnv: ["other=FROM_ENV"] },
      { FROM_ENV: "from-env" },
    ),
    { token: "s3cr=t", other: "from-env" },
  );
  const dir = await mkdtemp(path.join(tmpdir(), "packrun-secret-file-"));
  try {
    await writeFile(path.join(dir, "token"), "from-file\n");
    await writeFile(path.join(dir, "pem"), "line 1\nline 2\n\n");
    assert.deepEqual(
      await collectSecrets({
        secret: ["token=x"],
        secretFile: [`token=${path.join(dir, "token")}`, `key=${path.join(dir, "pem")}`],
      }),
      { token: "from-file", key: "line 1\nline 2\n" },
    );
    await assert.rejects(
      collectSecrets({ secretFile: [`token=${path.join(dir, "absent")}`] }),
      /cannot read the secret file of token, .*absent: no such file/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await assert.rejects(
    collectSecrets({ secretEnv: ["token=MISSING_VAR"] }, {}),
    /environment variable MISSING_VAR is not set/,
  );
  await assert.rejects(
    collectSecrets({ secret: ["=hunter2"] }),
    (error: unknown) => error instanceof Error && !error.message.includes("hunter2"),
  );
  assert.deepEqual(splitAssignment("--label", "team=a=b"), ["team", "a=b"]);
});

test("integer options are whole numbers within their range", () => {
  const parse = integerOption(-10, 10);
  assert.equal(parse("-3"), -3);
  assert.throws(() => parse("1.5"), /whole number from -10 to 10/);
  assert.throws(() => parse("11"), /whole number/);
  assert.throws(() => parse("abc"), /whole number/);
});

test("scopes default to all and unknown ones are refused", () => {
  assert.deepEqual(parseScopes(undefined), [
    "packs.read",
    "packs.write",
    "packs.run",
    "packs.approve",
  ]);
  assert.deepEqual(parseScopes("packs.read, packs.run"), ["packs.read", "packs.run"]);
  assert.throws(() => parseScopes("packs.read,admin"), /unknown scope\(s\) admin/);
  assert.throws(() => parseScopes(""), /no scope given/);
});

test("pages are followed up to the limit, asking only for what is still needed", async () => {
  const all = Array.from({ length: 7 }, (_, index) => index);
  const asked: [number, string | undefined][] = [];
  const fetchPage = async (pageSize: number, token: string | undefined) => {
    asked.push([pageSize, token]);
    const start = Number(token ?? 0);
    const size = Math.min(pageSize, 3);
    const items = all.slice(start, start + size);
    const next = start + size < all.length ? String(start + size) : undefined;
    return { items, nextPageToken: next };
  };
  assert.deepEqual(await collectPages(fetchPage, 5), {
    items: [0, 1, 2, 3, 4],
    nextPageToken: "5",
  });
  assert.deepEqual(asked, [
    [5, undefined],
    [2, "3"],
  ]);
  assert.deepEqual(await collectPages(fetchPage, 100, "5"), {
    items: [5, 6],
    nextPageToken: undefined,
  });
});

test("artifacts are chosen by digest, digest prefix, name or step/name", () => {
  const artifact = (stepId: string, name: string, hex: string): Artifact => ({
    stepId,
    name,
    type: "file",
    digest: `sha256:${hex.repeat(64 / hex.length)}`,
    sizeBytes: 1,
    status: "stored",
    downloadUrl: "",
  });
  const list = [artifact("scan", "report", "ab"), artifact("build", "report", "cd")];
  assert.equal(selectArtifact(list, "scan/report").stepId, "scan");
  assert.equal(selectArtifact(list, `sha256:${"cd".repeat(32)}`).stepId, "build");
  assert.equal(selectArtifact(list, "ababab").stepId, "scan");
  assert.throws(
    () => selectArtifact(list, "report"),
    (error: unknown) =>
      error instanceof Error &&
      (error as { exitCode?: number }).exitCode === ExitCode.invalidInput &&
      /matches several artifacts/.test(error.message),
  );
  assert.throws(
    () => selectArtifact(list, "nope"),
    (error: unknown) => (error as { exitCode?: number }).exitCode === ExitCode.notFound,
  );
  assert.equal(defaultArtifactFile(artifact("s", "dir/out.json", "ef")), "out.json");
  assert.equal(defaultArtifactFile(artifact("s", "..", "ef")), `sha256-${"ef".repeat(32)}`);
});

test("local tokens carry the profile's claims and verify with the public key", async () => {
  const token = await mintLocalToken(
    { ...devConfig(), keyFile, groups: ["ops"] },
    { scopes: ["packs.read"], expiresInSeconds: 60 },
    "cli.json",
  );
  const claims = await verify(token);
  assert.equal(claims.sub, "operator");
  assert.equal(claims[claimNames.tenant], "demo");
  assert.equal(claims[claimNames.scope], "packs.read");
  assert.deepEqual(claims[claimNames.groups], ["ops"]);
  assert.ok((claims.exp ?? 0) - (claims.iat ?? 0) === 60);

  await assert.rejects(
    mintLocalToken({ keyFile }, { scopes: ["packs.read"] }, "cli.json"),
    /missing issuer \(--issuer or "issuer" in cli\.json\), audience .*tenant .*subject/,
  );
  const notAKey = path.join(dir, "not-a-key.json");
  await writeFile(notAKey, JSON.stringify(key.jwks.keys[0]));
  await assert.rejects(readSigningKey(notAKey), /is not a private JWK/);
});

test("with only a signing key configured, an operator token is minted", async () => {
  const settings = resolveConnectionSettings({}, {}, devConfig(), "cli.json");
  const claims = await verify(await bearerToken(settings));
  assert.equal(claims[claimNames.scope], "packs.read packs.write packs.run packs.approve");
});

test("approval tokens: explicit ones win, dev mode mints one bound to the run, gate and plan", async () => {
  const fromFile = resolveConnectionSettings({}, {}, { ...devConfig(), token: "file" }, "c");
  assert.deepEqual(planApprovalToken(fromFile, undefined), { kind: "mint" });
  assert.deepEqual(planApprovalToken(fromFile, "bound"), { kind: "explicit", token: "bound" });
  const fromFlag = resolveConnectionSettings({ token: "flag" }, {}, devConfig(), "c");
  assert.deepEqual(planApprovalToken(fromFlag, undefined), { kind: "explicit", token: "flag" });
  const plain = resolveConnectionSettings({}, {}, { token: "file" }, "c");
  assert.deepEqual(planApprovalToken(plain, undefined), { kind: "configured", token: "file" });
  assert.throws(
    () => planApprovalToken(resolveConnectionSettings({}, {}, {}, "c"), undefined),
    (error: unknown) => (error as { exitCode?: number }).exitCode === ExitCode.auth,
  );

  const claims = await verify(await mintApprovalToken(fromFile, run, gate, {}));
  assert.equal(claims[claimNames.runId], "run-1");
  assert.equal(
    claims[claimNames.gateId],
    "release-gate",
    "bound to the gate instance (its step id)",
  );
  assert.equal(claims[claimNames.planHash], "sha256:plan");
  assert.deepEqual(claims[claimNames.groups], ["release-managers"], "the gate's grants");
  assert.match(String(claims[claimNames.scope]), /packs\.approve/);
  const as = await verify(
    await mintApprovalToken(fromFile, run, gate, { subject: "bob", groups: ["x"] }),
  );
  assert.equal(as.sub, "bob");
  assert.deepEqual(as[claimNames.groups], ["x"]);
});

test("an approval id two gates share names the one awaiting a decision", () => {
  const shared: Run = {
    ...run,
    pendingGates: ["release"],
    gates: [
      { ...gate, stepId: "staging", state: "succeeded" },
      { ...gate, stepId: "prod", state: "awaiting-approval" },
    ],
  };
  assert.equal(findApprovalGate(shared, "release").stepId, "prod");
  assert.equal(findApprovalGate(shared, undefined).stepId, "prod");
  assert.equal(findApprovalGate(shared, "staging").stepId, "staging");
});

test("the gate is found by approval id or step id, or is the only pending one", () => {
  assert.equal(findApprovalGate(run, undefined).gateId, "release");
  assert.equal(findApprovalGate(run, "release-gate").gateId, "release");
  assert.throws(
    () => findApprovalGate(run, "no-critical"),
    (error: unknown) =>
      (error as { exitCode?: number }).exitCode === ExitCode.notFound &&
      /has no approval gate no-critical \(gates: release\)/.test((error as Error).message),
  );
  assert.throws(
    () => findApprovalGate({ ...run, pendingGates: [] }, undefined),
    /no approval gate awaiting a decision/,
  );
  assert.throws(
    () => findApprovalGate({ ...run, pendingGates: ["a", "b"] }, undefined),
    /several pending gates \(a, b\): name one/,
  );
});
