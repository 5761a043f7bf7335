import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "vitest";
import { executeStep } from "../execute-step.ts";
import { collectLogs, makeDirs, stepRequest, type TestDirs } from "../testing/step-fixtures.ts";
import type { BundleMetadata } from "./bundle-ingest.ts";

const CONTENT = Buffer.from("offline bundle contents\n".repeat(10_000));
const SHA = createHash("sha256").update(CONTENT).digest("hex");

async function withBundle(run: (dirs: TestDirs) => Promise<void>): Promise<void> {
  const dirs = await makeDirs();
  try {
    await mkdir(path.join(dirs.workdir, "in"), { recursive: true });
    await writeFile(path.join(dirs.workdir, "in", "bundle.tar"), CONTENT);
    await run(dirs);
  } finally {
    await dirs.cleanup();
  }
}

test("a verified bundle is staged under bundles/<sha256>/ with metadata.json", async () => {
  await withBundle(async (dirs) => {
    for (const sha256 of [SHA, `sha256:${SHA.toUpperCase()}`]) {
      const logs = collectLogs();
      const before = Date.now();
      const result = await executeStep(
        stepRequest(dirs, {
          uses: "builtin:bundle.ingest",
          with: { path: "in/bundle.tar", sha256 },
          onLog: logs.onLog,
        }),
      );
      assert.equal(result.outcome, "succeeded", result.reason);
      const directory = path.join(dirs.stagingRoot, "bundles", SHA);
      const target = path.join(directory, "bundle.tar");
      assert.deepEqual(result.outputs, {
        path: target,
        sha256: SHA,
        digest: `sha256:${SHA}`,
        sizeBytes: String(CONTENT.length),
        metadata: path.join(directory, "metadata.json"),
      });
      assert.deepEqual(await readFile(target), CONTENT);
      const metadata = JSON.parse(
        await readFile(path.join(directory, "metadata.json"), "utf8"),
      ) as BundleMetadata;
      assert.equal(metadata.filename, "bundle.tar");
      assert.equal(metadata.sha256, SHA);
      assert.equal(metadata.sizeBytes, CONTENT.length);
      assert.equal(metadata.source, path.join(dirs.workdir, "in", "bundle.tar"));
      assert.ok(Date.parse(metadata.stagedAt) >= before - 1000);
      // No temporary files are left behind.
      assert.deepEqual((await readdir(directory)).sort(), ["bundle.tar", "metadata.json"]);
      assert.match(logs.texts("stdout")[0] ?? "", /^staged bundle\.tar/);
    }
  });
});

test("a checksum mismatch fails clearly and stages nothing", async () => {
  await withBundle(async (dirs) => {
    const wrong = "0".repeat(64);
    const result = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:bundle.ingest",
        with: { path: "in/bundle.tar", sha256: wrong },
      }),
    );
    assert.equal(result.outcome, "failed");
    assert.equal(result.reason, `sha256 mismatch for bundle.tar: expected ${wrong}, got ${SHA}`);
    await assert.rejects(readdir(path.join(dirs.stagingRoot, "bundles", wrong)), {
      code: "ENOENT",
    });
  });
});

test("a missing file or bad parameters fail clearly", async () => {
  await withBundle(async (dirs) => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ path: "in/nope.tar", sha256: SHA }, /^bundle not found: in\/nope\.tar$/],
      [{ path: "in", sha256: SHA }, /not a regular file/],
      [{ path: "in/bundle.tar", sha256: "abc" }, /with\.sha256: must be 64 hex digits/],
      [{ path: "in/bundle.tar", sha256: SHA, filename: "../x" }, /with\.filename/],
      [{ sha256: SHA }, /with\.path/],
    ];
    for (const [params, expected] of cases) {
      const result = await executeStep(
        stepRequest(dirs, { uses: "builtin:bundle.ingest", with: params }),
      );
      assert.equal(result.outcome, "failed", JSON.stringify(params));
      assert.match(result.reason, expected);
    }
  });
});

test("staging the same bundle again under another name reuses its directory", async () => {
  await withBundle(async (dirs) => {
    const result = await executeStep(
      stepRequest(dirs, {
        uses: "builtin:bundle.ingest",
        with: { path: "in/bundle.tar", sha256: SHA, filename: "renamed.tar" },
      }),
    );
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.equal(result.outputs.path, path.join(dirs.stagingRoot, "bundles", SHA, "renamed.tar"));
  });
});

test("bundles are read only from the workdir and the configured bundle roots", async () => {
  await withBundle(async (dirs) => {
    const dropDir = path.join(dirs.root, "drop");
    await mkdir(dropDir, { recursive: true });
    await writeFile(path.join(dropDir, "bundle.tar"), CONTENT);
    await symlink(path.join(dropDir, "bundle.tar"), path.join(dirs.workdir, "in", "link.tar"));
    const ingest = (source: string, bundleRoots?: string[]) =>
      executeStep(
        stepRequest(dirs, {
          uses: "builtin:bundle.ingest",
          with: { path: source, sha256: SHA },
          ...(bundleRoots ? { bundleRoots } : {}),
        }),
      );

    for (const source of [path.join(dropDir, "bundle.tar"), "in/link.tar", "/etc/hostname"]) {
      const refused = await ingest(source);
      assert.equal(refused.outcome, "failed", source);
      assert.match(refused.reason, /outside the directories bundles may be read from/, source);
    }
    const allowed = await ingest(path.join(dropDir, "bundle.tar"), [dropDir]);
    assert.equal(allowed.outcome, "succeeded", allowed.reason);
    const viaLink = await ingest("in/link.tar", [dropDir]);
    assert.equal(viaLink.outcome, "succeeded", viaLink.reason);
  });
});
