import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { generateSigningKeyPem, loadSigningKey, writeBundleToBuffer } from "@packrun/attestation";
import { fixtureBundleSource } from "@packrun/attestation/testing";
import { beforeAll, test } from "vitest";
import { runCli } from "./testing/run-cli.ts";

const run = promisify(execFile);
let dir: string;
let bundlePath: string;
let keyPath: string;
let otherKeyPath: string;
let bundle: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-verify-"));
  const key = loadSigningKey(generateSigningKeyPem("ecdsa-p256"));
  bundle = await writeBundleToBuffer(fixtureBundleSource(key));
  bundlePath = join(dir, "run.tar.gz");
  keyPath = join(dir, "evidence.pub.pem");
  otherKeyPath = join(dir, "other.pub.pem");
  await writeFile(bundlePath, bundle);
  await writeFile(keyPath, key.publicKeyPem);
  await writeFile(otherKeyPath, loadSigningKey(generateSigningKeyPem("ed25519")).publicKeyPem);
});

/** The bundle with the first occurrence of `needle` inside its tar altered, re-gzipped. */
async function tampered(needle: string): Promise<string> {
  const tar = gunzipSync(bundle);
  const at = tar.indexOf(Buffer.from(needle));
  assert.ok(at >= 0, `${needle} is in the bundle`);
  tar[at] = (tar[at] ?? 0) ^ 1;
  const path = join(dir, `tampered-${needle.replace(/\W/g, "")}.tar.gz`);
  await writeFile(path, gzipSync(tar));
  return path;
}

test("an intact bundle verifies with its own key (integrity only, on request) and with the trusted key (origin)", async () => {
  const own = await runCli(["verify", bundlePath, "--integrity-only"], { cwd: dir });
  assert.equal(own.code, 0, own.stderr);
  assert.match(
    own.stdout,
    /^verified: run run-fixture-1 .*integrity only, origin NOT verified; pass --key to prove origin/m,
  );
  const contradictory = await runCli(["verify", bundlePath, "--integrity-only", "--key", keyPath], {
    cwd: dir,
  });
  assert.equal(contradictory.code, 2);
  assert.match(contradictory.stderr, /--integrity-only and --key contradict/);
  const trusted = await runCli(["verify", bundlePath, "--key", keyPath], { cwd: dir });
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.match(trusted.stdout, /\(trusted\)$/m);
});

test("a bundle signed by another key fails against the trusted key with exit 7", async () => {
  const result = await runCli(["verify", bundlePath, "--key", otherKeyPath], { cwd: dir });
  assert.equal(result.code, 7);
  assert.match(result.stdout, /✖ signature attestation.dsse.json/);
});

test("one altered byte in a member is reported by name, exit 2", async () => {
  for (const needle of ["echo app", '"critical"', "planVersion"]) {
    const result = await runCli(["verify", await tampered(needle), "--key", keyPath], { cwd: dir });
    assert.equal(result.code, 2, `${needle}: ${result.stdout}`);
    assert.match(result.stderr, /not verified: /);
    assert.match(result.stdout, /✖ /);
  }
  const json = await runCli(
    ["verify", await tampered("echo app"), "--key", keyPath, "--format", "json"],
    { cwd: dir },
  );
  assert.equal(json.code, 2);
  const report = JSON.parse(json.stdout) as { ok: boolean; failures: { member?: string }[] };
  assert.equal(report.ok, false);
  assert.ok(
    report.failures.some((failure) => failure.member?.startsWith("artifacts/")),
    json.stdout,
  );
});

test("an unreadable bundle is a clear input error", async () => {
  const missing = await runCli(["verify", join(dir, "nope.tar.gz")], { cwd: dir });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope.tar.gz: cannot read the bundle/);
  const garbage = join(dir, "garbage.tar.gz");
  await writeFile(garbage, "not a bundle");
  const result = await runCli(["verify", garbage], { cwd: dir });
  assert.equal(result.code, 2);
  assert.match(result.stdout, /✖ archive/);
});

test("a bundle of layout 1 (no signed member list) is refused with exit 2, saying how to get a verifiable one", async () => {
  const path = join(dir, "layout-1.tar.gz");
  const work = join(dir, "layout-1");
  await mkdir(work);
  // GNU tar: the bundle as it was before bundle.dsse.json existed.
  await run("tar", ["-xzf", bundlePath, "-C", work]);
  await rm(join(work, "bundle.dsse.json"));
  await run("sh", ["-c", `tar -czf "${path}" $(find . -type f | sed 's|^\\./||' | sort)`], {
    cwd: work,
  });
  const result = await runCli(["verify", path, "--key", keyPath], { cwd: dir });
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(
    result.stderr,
    /layout 1.*not signed.*Download the bundle again \(packrun bundle RUN_ID/,
  );
});
