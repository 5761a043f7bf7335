/**
 * Runs the third-party verification recipe of docs/evidence.md (OpenSSL, jq, coreutils) against
 * generated bundles, so the documented commands are known to work.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

async function extracted(algorithm: "ed25519" | "ecdsa-p256"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `packrun-openssl-${algorithm}-`));
  const bundle = join(dir, "bundle.tar.gz");
  await writeFile(
    bundle,
    await writeBundleToBuffer(
      fixtureBundleSource(loadSigningKey(generateSigningKeyPem(algorithm))),
    ),
  );
  await run("tar", ["-xzf", bundle, "-C", dir]);
  await rm(bundle);
  return dir;
}

for (const algorithm of ["ed25519", "ecdsa-p256"] as const) {
  test(`the documented OpenSSL recipe verifies an ${algorithm} bundle and catches tampering`, {
    skip: missing.length > 0, // the tools the recipe needs are missing
  }, async () => {
    const script = await recipe();
    const dir = await extracted(algorithm);
    try {
      const { stdout } = await run("bash", ["-c", script], { cwd: dir });
      assert.match(stdout, /bundle verified/);
      const plan = join(dir, "plan.json");
      const bytes = await readFile(plan);
      bytes[10] = (bytes[10] as number) ^ 1;
      await writeFile(plan, bytes);
      await assert.rejects(run("bash", ["-c", script], { cwd: dir }));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
