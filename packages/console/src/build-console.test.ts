import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, test } from "vitest";
import { buildConsole, consoleAssetsDir, consoleSourceDigest } from "./build-console.ts";

/** The budget: the app's JavaScript, gzipped. */
const javaScriptBudgetBytes = 250 * 1024;

describe("the console build", () => {
  test("the app's JavaScript stays within 250 KB gzipped; measured", async () => {
    const build = await buildConsole();
    const scripts = build.files.filter((file) => file.path.endsWith(".js"));
    assert.ok(scripts.length > 0, "the build has JavaScript");
    const gzipped = scripts.reduce((sum, file) => sum + file.gzipBytes, 0);
    const raw = scripts.reduce((sum, file) => sum + file.bytes, 0);
    process.stdout.write(
      `console: JavaScript ${(raw / 1024).toFixed(1)} KB, ${(gzipped / 1024).toFixed(1)} KB gzipped (budget 250 KB)\n`,
    );
    assert.ok(gzipped <= javaScriptBudgetBytes, `${gzipped} bytes gzipped`);
  });

  test("the build records its sources' digest, every asset is content-hashed, and the served gzip copies match", async () => {
    const build = await buildConsole();
    assert.equal(build.digest, await consoleSourceDigest());
    const stamp = await readFile(join(consoleAssetsDir, ".source-digest"), "utf8");
    assert.equal(stamp.trim(), build.digest);
    // The same sources are not built twice.
    assert.equal((await buildConsole()).built, false);
    const html = await readFile(join(consoleAssetsDir, "index.html"), "utf8");
    // No inline script: the gateway's Content-Security-Policy allows only the app's own files.
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
    for (const file of build.files) {
      if (file.path !== "index.html")
        assert.match(file.path, /^assets\/[\w-]+-[\w-]{8}\.\w+$/, `${file.path} is content-hashed`);
      const content = await readFile(join(consoleAssetsDir, file.path));
      const gzipped = await readFile(join(consoleAssetsDir, `${file.path}.gz`));
      assert.deepEqual(gunzipSync(gzipped), content, `${file.path}.gz`);
    }
  });
});
