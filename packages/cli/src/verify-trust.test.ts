/**
 * `packrun verify` binds every bundle member to a signature and trusts no key it was not given.
 * The attacks are made with third-party tools: GNU tar and jq add a member to a genuine bundle,
 * OpenSSL makes the forger's key.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateSigningKeyPem, loadSigningKey, writeBundleToBuffer } from "@packrun/attestation";
import { fixtureBundleSource, fixtureTranscript } from "@packrun/attestation/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { runCli } from "./testing/run-cli.ts";

const run = promisify(execFile);

let dir: string;
let genuinePath: string;
let forgedPath: string;
let trustedKeyPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-verify-trust-"));
  const key = loadSigningKey(generateSigningKeyPem("ed25519"));
  genuinePath = join(dir, "genuine.tar.gz");
  trustedKeyPath = join(dir, "evidence.pub.pem");
  await writeFile(genuinePath, await writeBundleToBuffer(fixtureBundleSource(key)));
  await writeFile(trustedKeyPath, key.publicKeyPem);
  // The forger: their own OpenSSL key, a transcript that says someone else approved, re-signed.
  const attackerPath = join(dir, "attacker.pem");
  await run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", attackerPath]);
  const attacker = loadSigningKey(await readFile(attackerPath), attackerPath);
  const events = fixtureTranscript("run-fixture-1").map((event) =>
    event.type === "gate.approved" ? { ...event, message: "mallory approved ship" } : event,
  );
  forgedPath = join(dir, "forged.tar.gz");
  await writeFile(
    forgedPath,
    await writeBundleToBuffer(fixtureBundleSource(attacker, "run-fixture-1", events)),
  );
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe("every member is bound to the signature", () => {
  test("a member added with tar and listed in manifest.json is refused, even with --key", async () => {
    const work = join(dir, "added");
    await mkdir(work);
    await run("tar", ["-xzf", genuinePath, "-C", work]);
    await writeFile(join(work, "extra.txt"), "not from the evidence service\n");
    // List it in manifest.json exactly as the writer would: digest, path, size; sorted by path.
    const script = `set -eu
digest=$(sha256sum extra.txt | cut -d' ' -f1)
size=$(wc -c < extra.txt | tr -d ' ')
jq --arg d "sha256:$digest" --argjson n "$size" \\
  '.members += [{digest: $d, path: "extra.txt", sizeBytes: $n}] | .members |= sort_by(.path)' \\
  manifest.json > manifest.new && mv manifest.new manifest.json
tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@0 -czf ../added.tar.gz \\
  $(find . -type f | sed 's|^\\./||' | sort)`;
    await run("bash", ["-c", script], { cwd: work });
    const result = await runCli(["verify", join(dir, "added.tar.gz"), "--key", trustedKeyPath], {
      cwd: dir,
    });
    assert.equal(result.code, 2, `exit ${result.code}\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /✖ \S+ extra\.txt: .*not (bound|signed|in the signed)/);
    assert.match(result.stderr, /extra\.txt/);
  });
});

describe("trust is never assumed", () => {
  test("a genuine bundle verifies with --key and with PACKRUN_TRUSTED_KEYS", async () => {
    const flag = await runCli(["verify", genuinePath, "--key", trustedKeyPath], { cwd: dir });
    assert.equal(flag.code, 0, flag.stdout + flag.stderr);
    assert.match(flag.stdout, /\(trusted\)$/m);
    const fromEnv = await runCli(["verify", genuinePath], {
      cwd: dir,
      env: { PACKRUN_TRUSTED_KEYS: trustedKeyPath },
    });
    assert.equal(fromEnv.code, 0, fromEnv.stdout + fromEnv.stderr);
    // The config file's trustedKeys, relative to the file.
    await writeFile(join(dir, "cli.json"), JSON.stringify({ trustedKeys: ["evidence.pub.pem"] }));
    const fromConfig = await runCli(["verify", genuinePath], {
      cwd: tmpdir(),
      env: { PACKRUN_TRUSTED_KEYS: "", PACKRUN_CLI_CONFIG: join(dir, "cli.json") },
    });
    assert.equal(fromConfig.code, 0, fromConfig.stdout + fromConfig.stderr);
    const forged = await runCli(["verify", forgedPath], {
      cwd: tmpdir(),
      env: { PACKRUN_TRUSTED_KEYS: "", PACKRUN_CLI_CONFIG: join(dir, "cli.json") },
    });
    assert.equal(forged.code, 7, forged.stdout + forged.stderr);
  });

  test("a forgery re-signed with the forger's key is refused without a trusted key (exit 6)", async () => {
    const result = await runCli(["verify", forgedPath], {
      cwd: dir,
      env: {
        PACKRUN_TRUSTED_KEYS: "",
        PACKRUN_CLI_CONFIG: "",
        PACKRUN_HOME: join(dir, "empty-home"),
      },
    });
    assert.equal(result.code, 6, `exit ${result.code}\n${result.stdout}${result.stderr}`);
    assert.match(result.stderr, /no trusted key/);
    assert.match(result.stderr, /--key|PACKRUN_TRUSTED_KEYS|--integrity-only/);
  });

  test("the forgery is refused under the trusted key (exit 7)", async () => {
    for (const env of [{}, { PACKRUN_TRUSTED_KEYS: trustedKeyPath }]) {
      const args = Object.keys(env).length === 0 ? ["--key", trustedKeyPath] : [];
      const result = await runCli(["verify", forgedPath, ...args], { cwd: dir, env });
      assert.equal(result.code, 7, `exit ${result.code}\n${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /not signed by a trusted key/);
    }
  });

  test("only --integrity-only accepts it, and says it is integrity only", async () => {
    const result = await runCli(["verify", forgedPath, "--integrity-only"], {
      cwd: dir,
      env: {
        PACKRUN_TRUSTED_KEYS: "",
        PACKRUN_CLI_CONFIG: "",
        PACKRUN_HOME: join(dir, "empty-home"),
      },
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /integrity only/);
    assert.match(result.stdout, /origin NOT verified/);
  });
});
