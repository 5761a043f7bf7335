import { cp, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A freshly initialised, cleanly shut down PGlite data directory, made once (at `npm install`,
 * see `prepare-pglite-template.ts`) and copied for every new embedded database. initdb in
 * WebAssembly costs seconds and hundreds of MiB at the first start; copying its result costs a
 * directory copy. Kept per PGlite version under `node_modules/.cache/packrun/`, beside the
 * PGlite it belongs to.
 */
export async function pgliteTemplateDir(): Promise<string> {
  const packageRoot = dirname(dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite"))));
  const { version } = JSON.parse(await readFile(join(packageRoot, "package.json"), "utf8")) as {
    version: string;
  };
  return join(packageRoot, "..", "..", ".cache", "packrun", `pglite-${version}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Makes the template with `initialise` (which must leave a complete, closed data directory in
 * the directory it is given) unless it exists; built beside its place and renamed into it, so an
 * interrupted build leaves no half template. Returns the template's directory (`template`, by
 * default {@link pgliteTemplateDir}).
 */
export async function preparePgliteTemplate(
  initialise: (dataDir: string) => Promise<void>,
  template?: string,
): Promise<string> {
  template ??= await pgliteTemplateDir();
  if (await exists(join(template, "PG_VERSION"))) return template;
  const building = `${template}.building-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  await mkdir(dirname(template), { recursive: true });
  try {
    await initialise(building);
    await rename(building, template).catch(async (error: unknown) => {
      // Another install made it meanwhile: theirs is as good.
      if (!(await exists(join(template, "PG_VERSION")))) throw error;
    });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  return template;
}

/**
 * Gives a new embedded database its initial files from the template, when there is one and
 * `dataDir` is missing or empty; copied beside it and renamed, so an interrupted copy is never
 * taken for a database. Returns whether it did (else PGlite runs initdb itself).
 */
export async function seedFromTemplate(dataDir: string): Promise<boolean> {
  const present = await readdir(dataDir).catch(() => undefined);
  if (present !== undefined && present.length > 0) return false;
  const template = await pgliteTemplateDir();
  if (!(await exists(join(template, "PG_VERSION")))) return false;
  const seeding = `${dataDir}.seeding-${process.pid}`;
  await rm(seeding, { recursive: true, force: true });
  await cp(template, seeding, { recursive: true });
  await rm(dataDir, { recursive: true, force: true });
  await rename(seeding, dataDir);
  return true;
}
