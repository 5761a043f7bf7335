import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { describe, test } from "vitest";
import {
  type ApprovalRequest,
  approvalRequestType,
  signApprovalResponse,
} from "./approval-exchange.ts";
import { bundlePaths, keyMemberPath, manifestDocument } from "./bundle-layout.ts";
import { buildBundleStatement, serializeBundleStatement } from "./bundle-statement.ts";
import { serializeEnvelope } from "./dsse-envelope.ts";
import { evidenceJson } from "./evidence-json.ts";
import { inTotoPayloadType } from "./in-toto.ts";
import { generateSigningKeyPem, loadSigningKey, loadVerificationKey } from "./keys.ts";
import { signEnvelope } from "./sign-envelope.ts";
import { collectBytes, packTarGz, readTarGz } from "./tar-gz.ts";
import { fixtureBundleSource, fixturePlan, fixtureTranscript } from "./test-fixtures.ts";
import { verifyBundle } from "./verify-bundle.ts";
import { writeBundleToBuffer } from "./write-bundle.ts";

const key = loadSigningKey(generateSigningKeyPem("ed25519"));
const trusted = [loadVerificationKey(key.publicKeyPem)];

async function members(bundle: Buffer): Promise<Map<string, Buffer>> {
  const read = await readTarGz(bundle);
  assert.ok(read.ok);
  return read.members;
}

async function repack(files: Map<string, Buffer>): Promise<Buffer> {
  return collectBytes(packTarGz([...files].map(([path, content]) => ({ path, content }))));
}

describe("evidence bundle", () => {
  test("rebuilding gives the same bytes; members sorted with fixed metadata", async () => {
    const first = await writeBundleToBuffer(fixtureBundleSource(key));
    const second = await writeBundleToBuffer(fixtureBundleSource(key));
    assert.ok(first.equals(second));
    assert.equal(first[9], 0xff, "gzip OS byte is 'unknown'");
    assert.equal(first.readUInt32LE(4), 0, "gzip header has no timestamp");
    const extract = tar.extract();
    Readable.from([first]).pipe(createGunzip()).pipe(extract);
    const headers: tar.Header[] = [];
    for await (const entry of extract) {
      headers.push(entry.header);
      entry.resume();
    }
    const names = headers.map((header) => header.name);
    assert.deepEqual(names, [...names].sort());
    assert.deepEqual(
      names.filter((name) => !name.startsWith("artifacts/sha256/")),
      [
        bundlePaths.approvals,
        bundlePaths.artifactsIndex,
        bundlePaths.attestation,
        bundlePaths.bundleAttestation,
        bundlePaths.inputs,
        keyMemberPath(key.keyId),
        bundlePaths.manifest,
        bundlePaths.outputs,
        bundlePaths.plan,
        bundlePaths.transcript,
      ],
    );
    for (const header of headers) {
      assert.equal(header.mtime?.getTime(), 0);
      assert.equal(header.uid, 0);
      assert.equal(header.gid, 0);
      assert.equal(header.mode, 0o644);
      assert.equal(header.type, "file");
    }
  });

  test("a genuine bundle verifies: every check passes, with the trusted key", async () => {
    const bundle = await writeBundleToBuffer(fixtureBundleSource(key));
    const report = await verifyBundle(bundle, { keys: trusted });
    assert.deepEqual(report.failures, []);
    assert.equal(report.ok, true);
    assert.equal(report.keyTrusted, true);
    assert.equal(report.keyId, key.keyId);
    assert.equal(report.runId, "run-fixture-1");
    assert.equal(report.status, "succeeded");
    const kinds = new Set(report.checks.map((check) => check.check));
    for (const kind of [
      "signature",
      "statement",
      "plan-hash",
      "plan-consistency",
      "content",
      "artifact",
      "transcript-digest",
      "transcript-sequence",
      "transcript-consistency",
      "member-digest",
      "member-signed",
      "manifest",
      "key",
    ]) {
      assert.ok(kinds.has(kind), `check ${kind} ran`);
    }
    const files = await members(bundle);
    const plan = files.get(bundlePaths.plan) as Buffer;
    assert.equal(
      report.planHash?.slice(7),
      (await import("node:crypto")).createHash("sha256").update(plan).digest("hex"),
    );
  });

  test("without trusted keys it fails closed; integrityOnly checks with the embedded key and says so", async () => {
    const bundle = await writeBundleToBuffer(fixtureBundleSource(key));
    const untrusted = await verifyBundle(bundle);
    assert.equal(untrusted.ok, false);
    assert.equal(untrusted.trust, "none");
    assert.deepEqual(
      untrusted.failures.map((failure) => failure.check),
      ["trusted-key"],
    );
    assert.match(untrusted.failures[0]?.message ?? "", /no trusted key/);
    const report = await verifyBundle(bundle, { integrityOnly: true });
    assert.equal(report.ok, true);
    assert.equal(report.trust, "integrity-only");
    assert.equal(report.keyTrusted, false);
    assert.match(
      report.checks.find((check) => check.check === "signature")?.message ?? "",
      /bundle's own key/,
    );
  });

  test("a bundle of layout 1 (no signed member list) is refused, saying how to get a verifiable one", async () => {
    const files = await members(await writeBundleToBuffer(fixtureBundleSource(key)));
    files.delete(bundlePaths.bundleAttestation);
    const report = await verifyBundle(await repack(files), { keys: trusted });
    assert.equal(report.ok, false);
    const failure = report.failures.find((check) => check.check === "bundle-version");
    assert.match(failure?.message ?? "", /layout 1.*not signed.*Download the bundle again/);
  });

  test("every member must be in the signed member list with its digest", async () => {
    const original = await members(await writeBundleToBuffer(fixtureBundleSource(key)));
    // Added, and listed in the (unsigned-before-layout-2) manifest as the writer would list it.
    const extra = new Map(original);
    const content = Buffer.from("not from the evidence service\n");
    extra.set("extra.txt", content);
    const manifest = JSON.parse((original.get(bundlePaths.manifest) as Buffer).toString("utf8"));
    manifest.members.push({
      path: "extra.txt",
      digest: `sha256:${(await import("node:crypto")).createHash("sha256").update(content).digest("hex")}`,
      sizeBytes: content.length,
    });
    manifest.members.sort((a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : 1));
    extra.set(bundlePaths.manifest, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    const added = await verifyBundle(await repack(extra), { keys: trusted });
    assert.equal(added.ok, false);
    assert.ok(
      added.failures.some(
        (failure) =>
          failure.check === "member-signed" &&
          failure.member === "extra.txt" &&
          /not in the signed member list/.test(failure.message),
      ),
      JSON.stringify(added.failures),
    );
  });

  test("flipping one byte of any member fails verification and names exactly that member", async () => {
    const bundle = await writeBundleToBuffer(fixtureBundleSource(key));
    const original = await members(bundle);
    assert.equal(original.size, 12);
    for (const [path, content] of original) {
      for (const at of [0, Math.floor(content.length / 2), content.length - 2]) {
        const tampered = new Map(original);
        const copy = Buffer.from(content);
        copy[at] = (copy[at] as number) ^ 0x01;
        tampered.set(path, copy);
        const report = await verifyBundle(await repack(tampered), { keys: trusted });
        assert.equal(report.ok, false, `${path}@${at}: tampering went unnoticed`);
        const blamed = new Set(report.failures.map((failure) => failure.member));
        assert.deepEqual(
          [...blamed],
          [path],
          `${path}@${at}: blamed ${[...blamed].join(", ")}: ${JSON.stringify(report.failures)}`,
        );
      }
    }
  });

  test("a missing member, an extra member and a corrupt archive are reported", async () => {
    const bundle = await writeBundleToBuffer(fixtureBundleSource(key));
    const original = await members(bundle);
    const without = new Map(original);
    without.delete(bundlePaths.approvals);
    const missing = await verifyBundle(await repack(without), { keys: trusted });
    assert.ok(
      missing.failures.some(
        (failure) => failure.member === bundlePaths.approvals && failure.check === "member-present",
      ),
    );
    const extra = new Map(original);
    extra.set("evil.sh", Buffer.from("rm -rf /"));
    const added = await verifyBundle(await repack(extra), { keys: trusted });
    assert.deepEqual(
      added.failures.map((failure) => [failure.check, failure.member]),
      [
        ["member-signed", "evil.sh"],
        ["member-digest", "evil.sh"],
      ],
    );
    const corrupt = Buffer.from(bundle);
    const middle = Math.floor(corrupt.length / 2);
    corrupt[middle] = (corrupt[middle] as number) ^ 0x55;
    const broken = await verifyBundle(corrupt, { keys: trusted });
    assert.equal(broken.ok, false);
    const truncated = await verifyBundle(bundle.subarray(0, bundle.length - 30), { keys: trusted });
    assert.equal(truncated.ok, false);
    assert.equal(truncated.failures[0]?.check, "archive");
    assert.equal((await verifyBundle(Buffer.from("not a bundle"))).failures[0]?.check, "archive");
  });

  test("key rotation: an old bundle verifies with the old key among the trusted keys, not without it", async () => {
    const next = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
    const oldBundle = await writeBundleToBuffer(fixtureBundleSource(key, "run-old"));
    const newBundle = await writeBundleToBuffer(fixtureBundleSource(next, "run-new"));
    const ring = [next.publicKeyPem, key.publicKeyPem];
    assert.equal((await verifyBundle(oldBundle, { keys: ring })).ok, true);
    const fresh = await verifyBundle(newBundle, { keys: ring });
    assert.equal(fresh.ok, true);
    assert.equal(fresh.keyId, next.keyId);
    const rotatedOut = await verifyBundle(oldBundle, { keys: [next.publicKeyPem] });
    assert.equal(rotatedOut.ok, false);
    assert.deepEqual(
      rotatedOut.failures.map((failure) => [failure.check, failure.member]),
      [
        ["signature", bundlePaths.attestation],
        ["signature", bundlePaths.bundleAttestation],
      ],
    );
  });

  test("key rotation: a run attested with the old key, bundled after rotation, carries both keys", async () => {
    const next = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
    const bundle = await writeBundleToBuffer({ ...fixtureBundleSource(key), signingKey: next });
    const files = await members(bundle);
    assert.ok(files.has(keyMemberPath(key.keyId)) && files.has(keyMemberPath(next.keyId)));
    const report = await verifyBundle(bundle, { keys: [key.publicKeyPem, next.publicKeyPem] });
    assert.deepEqual(report.failures, []);
    assert.equal(report.keyId, key.keyId);
    assert.equal(report.bundleKeyId, next.keyId);
    const oldOnly = await verifyBundle(bundle, { keys: [key.publicKeyPem] });
    assert.deepEqual(
      oldOnly.failures.map((failure) => [failure.check, failure.member]),
      [["signature", bundlePaths.bundleAttestation]],
    );
  });

  test("a signed transcript with a gap or a missing terminal event still fails the continuity checks", async () => {
    const events = fixtureTranscript("run-gap");
    const gap = events.filter((event) => event.sequence !== 4);
    const report = await verifyBundle(
      await writeBundleToBuffer(fixtureBundleSource(key, "run-gap", gap)),
      {
        keys: trusted,
      },
    );
    const failure = report.failures.find((check) => check.check === "transcript-sequence");
    assert.match(failure?.message ?? "", /sequence 5, expected 4/);
    const unfinished = events.slice(0, -1);
    const open = await verifyBundle(
      await writeBundleToBuffer(fixtureBundleSource(key, "run-gap", unfinished)),
      {
        keys: trusted,
      },
    );
    assert.match(
      open.failures.find((check) => check.check === "transcript-consistency")?.message ?? "",
      /last event is not the run's terminal event/,
    );
  });

  test("a bundle whose source contradicts its attestation cannot be written", async () => {
    const source = fixtureBundleSource(key);
    await assert.rejects(writeBundleToBuffer({ ...source, planJson: `${source.planJson} ` }), {
      code: "PLAN_HASH_MISMATCH",
    });
    await assert.rejects(writeBundleToBuffer({ ...source, inputValues: { region: "elsewhere" } }), {
      code: "INTERNAL",
    });
    const [file] = source.artifactFiles;
    assert.ok(file);
    await assert.rejects(
      writeBundleToBuffer({
        ...source,
        artifactFiles: [
          {
            ...file,
            open: async function* () {
              yield Buffer.from("corrupted in the store");
            },
          },
        ],
      }),
      /content changed/,
    );
  });

  test("pack.yaml must be the attested pack: a signed but different pack source fails, naming pack.yaml", async () => {
    const source = fixtureBundleSource(key);
    const plain = await members(await writeBundleToBuffer(source));
    const absent = await verifyBundle(await repack(plain), { keys: trusted });
    assert.ok(absent.ok, JSON.stringify(absent.failures));
    assert.match(
      absent.checks.find((check) => check.check === "pack-source")?.message ?? "",
      /without its pack source/,
    );
    // A signer that ships some other pack.yaml, listed and signed like every member.
    const files = new Map(plain);
    const content = Buffer.from(
      "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\n# not the run's\n",
    );
    files.set(bundlePaths.packSource, content);
    const digest = `sha256:${createHash("sha256").update(content).digest("hex")}`;
    const manifest = JSON.parse((plain.get(bundlePaths.manifest) as Buffer).toString("utf8"));
    manifest.members.push({ path: bundlePaths.packSource, digest, sizeBytes: content.length });
    const manifestBytes = Buffer.from(evidenceJson(manifestDocument(manifest, manifest.members)));
    files.set(bundlePaths.manifest, manifestBytes);
    const listed = [
      ...manifest.members,
      {
        path: bundlePaths.manifest,
        digest: `sha256:${createHash("sha256").update(manifestBytes).digest("hex")}`,
      },
    ];
    const statement = buildBundleStatement(
      { bundleVersion: manifest.bundleVersion, runId: manifest.runId, planHash: manifest.planHash },
      listed,
    );
    files.set(
      bundlePaths.bundleAttestation,
      Buffer.from(
        serializeEnvelope(
          signEnvelope(inTotoPayloadType, serializeBundleStatement(statement), key),
        ),
      ),
    );
    const report = await verifyBundle(await repack(files), { keys: trusted });
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.failures.map((failure) => [failure.check, failure.member]),
      [["pack-source", bundlePaths.packSource]],
    );
    // The writer itself refuses a pack source that is not the attested pack.
    await assert.rejects(writeBundleToBuffer({ ...source, packSource: content }), {
      code: "INTERNAL",
    });
  });

  test("an offline approval in the transcript must be a response for this run, plan and gate", async () => {
    const approver = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
    const runId = "run-offline-1";
    const { planHash } = fixturePlan();
    const withResponse = (answersRun: string) => {
      const request: ApprovalRequest = {
        _type: approvalRequestType,
        requestId: "6f1c1d62-3f1a-4c55-9a43-2d0b7f6a9e10",
        nonce: "n".repeat(43),
        tenant: "acme",
        runId: answersRun,
        pack: { name: "demo", version: "1.0.0", digest: `sha256:${"ab".repeat(32)}` },
        planHash,
        gate: { stepId: "approve", approvalId: "ship", message: "", grants: [] },
        inputs: [],
        quorum: { required: 1, approvedBy: [] },
        issuedAt: "2026-01-31T12:00:00.000Z",
        expiresAt: "2026-02-01T12:00:00.000Z",
        requestedBy: "operator",
      };
      const response = signApprovalResponse(
        { payload: Buffer.from(JSON.stringify(request)), value: request },
        { approve: true, comment: "" },
        approver,
      );
      return fixtureTranscript(runId).map((event) =>
        event.type === "gate.approved"
          ? {
              ...event,
              metadata: {
                offline: "true",
                approver: "alice@example.com",
                keyId: approver.keyId,
                response,
                responseDigest: `sha256:${createHash("sha256").update(response).digest("hex")}`,
              },
            }
          : event,
      );
    };
    const good = await verifyBundle(
      await writeBundleToBuffer(fixtureBundleSource(key, runId, withResponse(runId))),
      { keys: trusted },
    );
    assert.ok(good.ok, JSON.stringify(good.failures));
    assert.equal(good.checks.filter((check) => check.check === "offline-approval").length, 1);
    const other = await verifyBundle(
      await writeBundleToBuffer(fixtureBundleSource(key, runId, withResponse("another-run"))),
      { keys: trusted },
    );
    assert.deepEqual(
      other.failures.map((failure) => [failure.check, failure.member]),
      [["offline-approval", bundlePaths.transcript]],
    );
    assert.match(other.failures[0]?.message ?? "", /it answers run another-run/);
  });
});
