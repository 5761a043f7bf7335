import { createHash } from "node:crypto";
import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

import { consoleAssetsDir, consoleSourceDir } from "./assets-dir.ts";

export { consoleAssetsDir, consoleSourceDir };

/** The build's record of which sources it was made from. */
const stampFile = ".source-digest";
const lockFile = resolve(import.meta.dirname, "../../../package-lock.json");

/** What one build produced. */
export interface ConsoleBuild {
  /** False when the assets were already built from these very sources. */
  readonly built: boolean;
  readonly digest: string;
  /** Every built file, relative to {@link consoleAssetsDir}, with its raw and gzipped size. */
  readonly files: readonly { path: string; bytes: number; gzipBytes: number }[];
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/**
 * SHA-256 over every source file (path and content) and the lockfile, which pins the toolchain:
 * the same digest means the same build.
 */
export async function consoleSourceDigest(): Promise<string> {
  const hash = createHash("sha256");
  for (const file of await filesUnder(consoleSourceDir)) {
    hash.update(relative(consoleSourceDir, file)).update("\0");
    hash.update(await readFile(file)).update("\0");
  }
  hash.update(await readFile(lockFile));
  return `sha256:${hash.digest("hex")}`;
}

async function builtFiles(): Promise<ConsoleBuild["files"]> {
  const files = [];
  for (const file of await filesUnder(consoleAssetsDir)) {
    if (file.endsWith(".gz") || file.endsWith(".br") || file.endsWith(stampFile)) continue;
    const content = await readFile(file);
    files.push({
      path: relative(consoleAssetsDir, file),
      bytes: content.length,
      gzipBytes: gzipSync(content, { level: 9 }).length,
    });
  }
  return files;
}

/**
 * Builds the console with Vite (Preact, TypeScript) into {@link consoleAssetsDir}, with a gzip
 * and a brotli copy of every file for the gateway to serve pre-compressed. Skipped when the
 * assets were built from the same sources (`force` rebuilds anyway).
 */
export async function buildConsole(options: { force?: boolean } = {}): Promise<ConsoleBuild> {
  const digest = await consoleSourceDigest();
  const stamp = await readFile(join(consoleAssetsDir, stampFile), "utf8").catch(() => "");
  if (!options.force && stamp.trim() === digest)
    return { built: false, digest, files: await builtFiles() };
  // Imported here: only a build needs the toolchain (the image's runtime has none).
  const [{ build }, { default: preact }] = await Promise.all([
    import("vite"),
    import("@preact/preset-vite"),
  ]);
  // Built beside and swapped in, so a gateway serving the old build (a test file running at the
  // same time) never sees a half-written directory.
  const staging = `${consoleAssetsDir}.${process.pid}.tmp`;
  const retired = `${consoleAssetsDir}.${process.pid}.old`;
  await rm(staging, { recursive: true, force: true });
  // Vite and the Preact preset decide "production" by NODE_ENV, which a caller may have set
  // otherwise (vitest sets "test": the bundle would keep Preact's debug hooks, 30 % larger).
  const callerNodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    await build({
      root: consoleSourceDir,
      configFile: false,
      mode: "production",
      logLevel: "warn",
      base: "/",
      plugins: [preact()],
      build: {
        outDir: staging,
        emptyOutDir: true,
        target: "es2022",
        // No inline scripts: the gateway's Content-Security-Policy allows only 'self'.
        modulePreload: { polyfill: false },
        assetsInlineLimit: 0,
        sourcemap: false,
      },
    });
  } finally {
    if (callerNodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = callerNodeEnv;
  }
  for (const file of await filesUnder(staging)) {
    const content = await readFile(file);
    await writeFile(`${file}.gz`, gzipSync(content, { level: 9 }));
    await writeFile(
      `${file}.br`,
      brotliCompressSync(content, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
    );
  }
  await writeFile(join(staging, stampFile), `${digest}\n`);
  await rename(consoleAssetsDir, retired).catch(() => {});
  await rename(staging, consoleAssetsDir);
  await rm(retired, { recursive: true, force: true });
  return { built: true, digest, files: await builtFiles() };
}

if (import.meta.main) {
  const started = performance.now();
  const result = await buildConsole({ force: process.argv.includes("--force") });
  const js = result.files.filter((file) => file.path.endsWith(".js"));
  const gzipKb = js.reduce((sum, file) => sum + file.gzipBytes, 0) / 1024;
  // --quiet (npm start): say something only when there was something to build.
  if (result.built || !process.argv.includes("--quiet"))
    process.stdout.write(
      result.built
        ? `console: built ${consoleAssetsDir} in ${Math.round(performance.now() - started)} ms (JavaScript ${gzipKb.toFixed(1)} KB gzipped)\n`
        : `console: ${consoleAssetsDir} is up to date\n`,
    );
}
