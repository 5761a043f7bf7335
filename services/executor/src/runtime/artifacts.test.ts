import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "vitest";
import { collectArtifacts } from "./artifacts.ts";
import { makeDirs } from "./testing/step-fixtures.ts";

test("declared artifacts are hashed with SHA-256 and sized", async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(path.join(dirs.workdir, "out"), { recursive: true });
    const content = Buffer.alloc(3 * 1024 * 1024, "z");
    await writeFile(path.join(dirs.workdir, "out", "report.bin"), content);
    const collected = await collectArtifacts(
      dirs.workdir,
      [{ name: "report", path: "out/report.bin" }],
      true,
    );
    assert.equal(collected.error, null);
    assert.deepEqual(collected.artifacts, [
      {
        name: "report",
        path: "out/report.bin",
        digest: `sha256:${createHash("sha256").update(content).digest("hex")}`,
        sizeBytes: content.length,
      },
    ]);
  } finally {
    await dirs.cleanup();
  }
});

test("missing artifacts fail when required and are skipped otherwise", async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(dirs.workdir, { recursive: true });
    const declared = [{ name: "gone", path: "nope.txt" }];
    const required = await collectArtifacts(dirs.workdir, declared, true);
    assert.equal(required.error, 'artifact "gone" (nope.txt) was not found');
    const optional = await collectArtifacts(dirs.workdir, declared, false);
    assert.deepEqual(optional, { artifacts: [], error: null, aborted: false });
  } finally {
    await dirs.cleanup();
  }
});

test("paths escaping the workdir are refused: .., absolute, symlinks, directories", async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(path.join(dirs.workdir, "dir"), { recursive: true });
    await writeFile(path.join(dirs.root, "secret.txt"), "worker file");
    await symlink(path.join(dirs.root, "secret.txt"), path.join(dirs.workdir, "link.txt"));
    await symlink("..", path.join(dirs.workdir, "up"));
    const cases: [string, RegExp][] = [
      ["../secret.txt", /must not contain "\.\."/],
      ["dir/../../secret.txt", /must not contain "\.\."/],
      [path.join(dirs.root, "secret.txt"), /must be a relative path/],
      ["link.txt", /outside the workdir/],
      ["up/secret.txt", /outside the workdir/],
      ["dir", /not a regular file/],
    ];
    for (const [relative, expected] of cases) {
      const collected = await collectArtifacts(dirs.workdir, [{ name: "a", path: relative }], true);
      assert.deepEqual(collected.artifacts, [], relative);
      assert.match(collected.error ?? "", expected, relative);
    }
  } finally {
    await dirs.cleanup();
  }
});

test("a FIFO artifact is refused at once instead of blocking the open", async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(dirs.workdir, { recursive: true });
    execFileSync("mkfifo", [path.join(dirs.workdir, "pipe")]);
    const started = performance.now();
    const collected = await collectArtifacts(dirs.workdir, [{ name: "p", path: "pipe" }], true);
    assert.match(collected.error ?? "", /artifact "p" \(pipe\) is not a regular file \(a FIFO\)/);
    assert.ok(performance.now() - started < 1_000);
  } finally {
    await dirs.cleanup();
  }
});

test("hashing stops when the step's deadline signal fires", async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(dirs.workdir, { recursive: true });
    await writeFile(path.join(dirs.workdir, "big.bin"), Buffer.alloc(8 * 1024 * 1024));
    const collected = await collectArtifacts(
      dirs.workdir,
      [{ name: "big", path: "big.bin" }],
      true,
      AbortSignal.abort(),
    );
    assert.equal(collected.aborted, true);
    assert.deepEqual(collected.artifacts, []);
    assert.match(collected.error ?? "", /big/);
  } finally {
    await dirs.cleanup();
  }
});
