/**
 * Runs the third-party verification recipe of docs/evidence.md (OpenSSL, jq, coreutils) against
 * generated bundles, so the documented commands are known to work.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { test } from "vitest";
import { generateSigningKeyPem, loadSigningKey } from "./keys.ts";
import { fixtureBundleSource } from "./test-fixtures.ts";
import { writeBundleToBuffer } from "./write-bundle.ts";

const run = promisify(execFile);
const docs = new URL("../../../docs/evidence.md", import.meta.url);

function available(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const missing = ["openssl", "jq", "sha256sum", "tar", "base64"].filter(
  (command) => !available(command),
);

async function recipe(): Promise<string> {
  const text = await readFile(docs, "utf8");
  const match = /```sh verify-bundle\n([\s\S]*?)```/.exec(text);
  assert.ok(match, "docs/evidence.md has a ```sh verify-bundle block");
  return match[1] as string;
}

/**
 * A bundle extracted with tar into a fresh directory: `bundle/` holds the .tar.gz, and the
 * trusted public key is `trusted.pem` beside it (outside the bundle, as a verifier keeps it).
 */
async function extracted(algorithm: "ed25519" | "ecdsa-p256"): Promise<{
  dir: string;
  env: NodeJS.ProcessEnv;
}> {
  const root = await mkdtemp(join(tmpdir(), `packrun-openssl-${algorithm}-`));
  const key = loadSigningKey(generateSigningKeyPem(algorithm));
  const dir = join(root, "bundle");
  await mkdir(dir);
  const bundle = join(root, "bundle.tar.gz");
  await writeFile(bundle, await writeBundleToBuffer(fixtureBundleSource(key)));
  await writeFile(join(root, "trusted.pem"), key.publicKeyPem);
  await run("tar", ["-xzf", bundle, "-C", dir]);
  return {
    dir,
    env: { ...process.env, BUNDLE: bundle, TRUSTED_KEY: join(root, "trusted.pem") },
  };
}

for (const algorithm of ["ed25519", "ecdsa-p256"] as const) {
  test(`the documented OpenSSL recipe verifies an ${algorithm} bundle and catches tampering`, {
    skip: missing.length > 0, // the tools the recipe needs are missing
  }, async () => {
    const script = await recipe();
    const { dir, env } = await extracted(algorithm);
    try {
      const { stdout } = await run("bash", ["-c", script], { cwd: dir, env });
      assert.match(stdout, /bundle verified/);
      const plan = join(dir, "plan.json");
      const bytes = await readFile(plan);
      bytes[10] = (bytes[10] as number) ^ 1;
      await writeFile(plan, bytes);
      await assert.rejects(run("bash", ["-c", script], { cwd: dir, env }));
    } finally {
      await rm(dirname(dir), { recursive: true, force: true });
    }
  });

  test(`the documented recipe refuses a member added to an ${algorithm} bundle and listed in manifest.json`, {
    skip: missing.length > 0,
  }, async () => {
    const script = await recipe();
    const { dir, env } = await extracted(algorithm);
    try {
      await writeFile(join(dir, "extra.txt"), "not from the evidence service\n");
      const add = `set -eu
d=$(sha256sum extra.txt | cut -d' ' -f1); n=$(wc -c < extra.txt | tr -d ' ')
jq --arg d "sha256:$d" --argjson n "$n" '.members += [{digest: $d, path: "extra.txt", sizeBytes: $n}]' \\
  manifest.json > manifest.new && mv manifest.new manifest.json
tar -czf "$BUNDLE" $(find . -type f | sed 's|^\\./||' | sort)`;
      await run("bash", ["-c", add], { cwd: dir, env });
      await assert.rejects(run("bash", ["-c", script], { cwd: dir, env }), /extra\.txt/);
    } finally {
      await rm(dirname(dir), { recursive: true, force: true });
    }
  });

  test(`the documented recipe refuses an ${algorithm} bundle signed by a key it does not trust`, {
    skip: missing.length > 0,
  }, async () => {
    const script = await recipe();
    const { dir, env } = await extracted(algorithm);
    try {
      await writeFile(
        env.TRUSTED_KEY as string,
        loadSigningKey(generateSigningKeyPem(algorithm)).publicKeyPem,
      );
      await assert.rejects(run("bash", ["-c", script], { cwd: dir, env }));
    } finally {
      await rm(dirname(dir), { recursive: true, force: true });
    }
  });
}
