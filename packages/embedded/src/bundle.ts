import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * The embedded default as one ES module: packrun's own TypeScript (every `@packrun/*` package
 * `main.ts` imports) bundled by esbuild at `npm install`, so that a start loads one file instead
 * of type-stripping and resolving hundreds. npm packages stay imports (loaded from node_modules
 * as before). The bundle records a digest of every file it was made from; a start runs it only
 * when the sources still have that digest (see {@link currentBundle}), never a stale one.
 */

const repository = resolve(import.meta.dirname, "../../..");
/** The sources' entry point (what `npm start` runs without a bundle). */
export const embeddedEntry = join(import.meta.dirname, "main.ts");
/** Kept outside the work tree (node_modules is ignored), beside the other install-time caches. */
export const embeddedBundleDir = join(repository, "node_modules", ".cache", "packrun", "embedded");
const lockFile = join(repository, "package-lock.json");

/** What a bundle was made from: its input files (relative to the repository) and their digest. */
interface BundleStamp {
  readonly node: string;
  readonly inputs: readonly string[];
  readonly digest: string;
}

/** SHA-256 over the Node version, the lockfile, and each input's path and content. */
function sourcesDigest(inputs: readonly string[]): string {
  const hash = createHash("sha256").update(process.version).update("\0");
  hash.update(readFileSync(lockFile)).update("\0");
  for (const input of inputs)
    hash
      .update(input)
      .update("\0")
      .update(readFileSync(join(repository, input)))
      .update("\0");
  return `sha256:${hash.digest("hex")}`;
}

/**
 * The bundle's path when it was built from exactly the sources present now (same files, same
 * content, same lockfile and Node), else undefined: then the sources run. Costs reading and
 * hashing the inputs (about 300 files, 2 MB).
 */
export function currentBundle(bundleDir = embeddedBundleDir): string | undefined {
  const { bundleFile, stampFile } = bundlePaths(bundleDir);
  try {
    const stamp = JSON.parse(readFileSync(stampFile, "utf8")) as BundleStamp;
    if (stamp.node !== process.version) return undefined;
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

/** `import.meta` of a source file, written into its bundled copy as the source's own values. */
function pinImportMeta(source: string, file: string): string {
  return source
    .replaceAll("import.meta.dirname", JSON.stringify(dirname(file)))
    .replaceAll("import.meta.filename", JSON.stringify(file))
    .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(file).href));
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
    logLevel: "warning",
    plugins: [
      {
        name: "packrun-sources",
        setup(build) {
          // npm packages load from node_modules at run time, as they do from the sources;
          // packrun's own workspace packages are bundled.
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith("@packrun/") ? undefined : { path: args.path, external: true },
          );
          // Paths a source computes from its own location (migrations, worker threads, the
          // spawn helper, the console's assets) keep pointing at the sources.
          build.onLoad({ filter: /\.[mc]?ts$/ }, async (args) => ({
            contents: pinImportMeta(await readFile(args.path, "utf8"), args.path),
            loader: "ts",
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
  const stamp: BundleStamp = { node: process.version, inputs, digest: sourcesDigest(inputs) };
  await mkdir(bundleDir, { recursive: true });
  await rm(stampFile, { force: true });
  const staging = `${bundleFile}.${process.pid}.tmp`;
  await writeFile(staging, output.contents);
  await rename(staging, bundleFile);
  await writeFile(stampFile, `${JSON.stringify(stamp)}\n`);
  return bundleFile;
}
