import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * The embedded default as one ES module: `main.ts` with everything it imports, packrun's
 * TypeScript and npm packages alike, bundled by esbuild at `npm install`, so that a start loads
 * one file instead of resolving, type-stripping and compiling about 3,000. The bundle records a digest of every file it was made from; a start runs it only
 * when the sources still have that digest (see {@link currentBundle}), never a stale one.
 */

const repository = resolve(import.meta.dirname, "../../..");
/** The sources' entry point (what `npm start` runs without a bundle). */
export const embeddedEntry = join(import.meta.dirname, "main.ts");
/** Kept outside the work tree (node_modules is ignored), beside the other install-time caches. */
export const embeddedBundleDir = join(repository, "node_modules", ".cache", "packrun", "embedded");
const lockFile = join(repository, "package-lock.json");
const installedLockFile = join(repository, "node_modules", ".package-lock.json");

/** What a bundle was made from: its input files (relative to the repository) and their digest. */
interface BundleStamp {
  readonly node: string;
  readonly inputs: readonly string[];
  readonly digest: string;
  /** Size and modification time of every file the digest reads, when it was taken. */
  readonly fingerprint: string;
}

/** The files {@link sourcesDigest} reads (all but the inputs under node_modules). */
function digestedFiles(inputs: readonly string[]): string[] {
  return [
    import.meta.filename,
    lockFile,
    installedLockFile,
    ...inputs
      .filter((input) => !input.startsWith("node_modules/"))
      .map((input) => join(repository, input)),
  ];
}

/**
 * Size and modification time of each digested file: while they are as they were when the
 * bundle was made, its digest need not be computed again (as make decides); when one differs, the
 * content decides (a touched file is not a changed one).
 */
function sourcesFingerprint(inputs: readonly string[]): string {
  const hash = createHash("sha256");
  for (const file of digestedFiles(inputs)) {
    const { size, mtimeMs } = statSync(file);
    hash.update(`${file}\0${size}\0${mtimeMs}\0`);
  }
  return hash.digest("hex");
}

/**
 * SHA-256 over the Node version, this recipe, the lockfiles, each input's path, and each
 * source's content.
 * The content of an input under node_modules is pinned by the lockfiles (npm's own
 * node_modules/.package-lock.json changes with every install), so only its path counts: reading
 * the 10 MB of them would cost a start 100 ms.
 */
function sourcesDigest(inputs: readonly string[]): string {
  const hash = createHash("sha256").update(process.version).update("\0");
  // This file is the recipe: a bundle made by another recipe is not current either.
  hash.update(readFileSync(import.meta.filename)).update("\0");
  hash.update(readFileSync(lockFile)).update("\0");
  hash.update(readFileSync(installedLockFile)).update("\0");
  for (const input of inputs) {
    hash.update(input).update("\0");
    if (!input.startsWith("node_modules/"))
      hash.update(readFileSync(join(repository, input))).update("\0");
  }
  return `sha256:${hash.digest("hex")}`;
}

/**
 * The bundle's path when it was built from exactly the sources present now (same files, same
 * content, same lockfiles and Node), else undefined: then the sources run. Costs a stat of
 * each source (about 300) while none changed, else reading and hashing them (2 MB).
 */
export function currentBundle(bundleDir = embeddedBundleDir): string | undefined {
  const { bundleFile, stampFile } = bundlePaths(bundleDir);
  try {
    const stamp = JSON.parse(readFileSync(stampFile, "utf8")) as BundleStamp;
    if (stamp.node !== process.version) return undefined;
    if (sourcesFingerprint(stamp.inputs) === stamp.fingerprint) return bundleFile;
    return sourcesDigest(stamp.inputs) === stamp.digest ? bundleFile : undefined;
  } catch {
    // No bundle, or an input is gone: the sources run.
    return undefined;
  }
}

function bundlePaths(bundleDir: string) {
  return {
    bundleFile: join(bundleDir, "main.mjs"),
    stampFile: join(bundleDir, "main.stamp.json"),
  };
}

/**
 * npm packages left as imports, loaded from node_modules: PGlite (its WebAssembly and data files
 * beside it), pino (its transports run files of their own in threads) and the build tools that
 * only a console build imports.
 */
const keptExternal = [
  "@electric-sql/pglite",
  "pino",
  "thread-stream",
  "vite",
  "@preact/preset-vite",
  "esbuild",
];

/** `import.meta` of a source file, written into its bundled copy as the source's own values. */
function pinImportMeta(source: string, file: string): string {
  return source
    .replaceAll("import.meta.dirname", JSON.stringify(dirname(file)))
    .replaceAll("import.meta.filename", JSON.stringify(file))
    .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(file).href))
    .replace(/(?<![.\w$])__dirname(?![\w$])/g, JSON.stringify(dirname(file)))
    .replace(/(?<![.\w$])__filename(?![\w$])/g, JSON.stringify(file));
}

/**
 * Bundles the embedded default with esbuild (a development dependency: without it, as in the
 * production image, nothing is built and the sources run). Built beside and renamed into
 * place, stamp last, so a start never takes a half-written bundle. `entry` and `bundleDir`
 * (default: the embedded default and its place under node_modules) are for tests.
 * @returns the bundle's path, or undefined when esbuild is not installed
 */
export async function buildEmbeddedBundle(
  options: { entry?: string; bundleDir?: string } = {},
): Promise<string | undefined> {
  const bundleDir = options.bundleDir ?? embeddedBundleDir;
  const { bundleFile, stampFile } = bundlePaths(bundleDir);
  const esbuild = await import("esbuild").catch(() => undefined);
  if (esbuild === undefined) return undefined;
  const result = await esbuild.build({
    entryPoints: [options.entry ?? embeddedEntry],
    bundle: true,
    write: false,
    platform: "node",
    format: "esm",
    target: "node26",
    metafile: true,
    // The repository's packages, wherever the entry is (tests bundle entries of their own).
    nodePaths: [join(repository, "node_modules")],
    logLevel: "warning",
    banner: {
      js: 'import { createRequire as __packrunCreateRequire } from "node:module"; const require = __packrunCreateRequire(import.meta.url);',
    },
    plugins: [
      {
        name: "packrun-sources",
        setup(build) {
          // Everything is bundled, npm packages too (resolving and compiling some 2,700 files
          // from node_modules was most of a start), but for the few kept as imports.
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            keptExternal.some((name) => args.path === name || args.path.startsWith(`${name}/`))
              ? { path: args.path, external: true }
              : undefined,
          );
          // Paths a file computes from its own location (migrations, worker threads, the spawn
          // helper, the console's assets, a package's worker script) keep pointing at the file.
          build.onLoad({ filter: /\.[mc]?[jt]s$/ }, async (args) => ({
            contents: pinImportMeta(await readFile(args.path, "utf8"), args.path),
            loader: /\.[mc]?ts$/.test(args.path) ? "ts" : "js",
          }));
        },
      },
    ],
  });
  const output = result.outputFiles[0];
  if (output === undefined) throw new Error("esbuild produced no bundle");
  const inputs = Object.keys(result.metafile.inputs)
    .map((input) => relative(repository, resolve(input)))
    .sort();
  const stamp: BundleStamp = {
    node: process.version,
    inputs,
    fingerprint: sourcesFingerprint(inputs),
    digest: sourcesDigest(inputs),
  };
  await mkdir(bundleDir, { recursive: true });
  await rm(stampFile, { force: true });
  const staging = `${bundleFile}.${process.pid}.tmp`;
  await writeFile(staging, output.contents);
  await rename(staging, bundleFile);
  await writeFile(stampFile, `${JSON.stringify(stamp)}\n`);
  return bundleFile;
}
