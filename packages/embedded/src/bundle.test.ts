import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, test } from "vitest";
import { buildEmbeddedBundle, currentBundle, embeddedBundleDir } from "./bundle.ts";

describe("embedded bundle", () => {
  let dir: string;
  let entry: string;
  let helper: string;
  let bundleDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "packrun-bundle-"));
    entry = join(dir, "src", "entry.ts");
    helper = join(dir, "src", "lib", "where.ts");
    // Beside the real bundle, so that its npm imports resolve from the repository's node_modules.
    bundleDir = join(dirname(embeddedBundleDir), `bundle-test-${process.pid}`);
    await mkdir(join(dir, "src", "lib"), { recursive: true });
    await writeFile(
      helper,
      "export const where: string = import.meta.dirname;\nexport const url: string = import.meta.url;\nexport const version = 1;\n",
    );
    await writeFile(
      entry,
      'import { url, version, where } from "./lib/where.ts";\nimport { z } from "zod";\nimport { PGlite } from "@electric-sql/pglite";\nexport const found = { where, url, version, zod: typeof z, pglite: typeof PGlite };\n',
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(bundleDir, { recursive: true, force: true });
  });

  test("a bundle runs while its sources are unchanged, with each source's own location", async () => {
    const bundle = await buildEmbeddedBundle({ entry, bundleDir });
    assert.equal(bundle, join(bundleDir, "main.mjs"));
    assert.equal(currentBundle(bundleDir), bundle);
    const loaded = (await import(pathToFileURL(bundle).href)) as {
      found: { where: string; url: string; version: number; zod: string; pglite: string };
    };
    // import.meta is the source file's, not the bundle's (migrations, threads, helper scripts).
    assert.equal(loaded.found.where, join(dir, "src", "lib"));
    assert.equal(loaded.found.url, pathToFileURL(helper).href);
    assert.equal(loaded.found.version, 1);
    // npm packages are bundled, but for the few that load files beside them (PGlite's
    // WebAssembly), which stay imports resolved from node_modules.
    const text = await readFile(bundle, "utf8");
    assert.doesNotMatch(text, /from "zod"/);
    assert.match(text, /from "@electric-sql\/pglite"/);
    assert.equal(loaded.found.zod, "object");
    assert.equal(loaded.found.pglite, "function");
  });

  test("a changed or missing source makes the bundle stale until it is built again", async () => {
    await buildEmbeddedBundle({ entry, bundleDir });
    await writeFile(helper, (await readFile(helper, "utf8")).replace("version = 1", "version = 2"));
    assert.equal(currentBundle(bundleDir), undefined);
    const rebuilt = await buildEmbeddedBundle({ entry, bundleDir });
    assert.equal(currentBundle(bundleDir), rebuilt);
    await rm(helper);
    assert.equal(currentBundle(bundleDir), undefined);
    await writeFile(helper, "export const where = 'x', url = 'y', version = 3;\n");
    assert.equal(currentBundle(bundleDir), undefined, "same paths, other content");
  });

  test("a touched but unchanged source keeps the bundle (the content decides)", async () => {
    const bundle = await buildEmbeddedBundle({ entry, bundleDir });
    const later = new Date(Date.now() + 60_000);
    await utimes(helper, later, later);
    assert.equal(currentBundle(bundleDir), bundle);
  });

  test("no stamp, or a stamp of another Node, is no bundle", async () => {
    await buildEmbeddedBundle({ entry, bundleDir });
    const stampFile = join(bundleDir, "main.stamp.json");
    const stamp = JSON.parse(await readFile(stampFile, "utf8")) as { node: string };
    await writeFile(stampFile, JSON.stringify({ ...stamp, node: "v0.0.0" }));
    assert.equal(currentBundle(bundleDir), undefined);
    await rm(stampFile);
    assert.equal(currentBundle(bundleDir), undefined);
    assert.equal(currentBundle(join(dir, "nowhere")), undefined);
    await rm(join(bundleDir, "main.mjs"));
  });

  test("the embedded default's install-time bundle lives under node_modules (git status stays clean)", () => {
    assert.match(embeddedBundleDir, /\/node_modules\/\.cache\/packrun\/embedded$/);
  });
});
