#!/usr/bin/env node
/**
 * Run by `npm install` (root `postinstall`): initialises the embedded PostgreSQL's template data
 * directory once (see pglite-template.ts), so that the first `npm start` copies it instead of
 * running initdb. Harmless to run again; a failure only means initdb at the first start.
 */
import { PGlite } from "@electric-sql/pglite";
import { preparePgliteTemplate } from "./pglite-template.ts";

const started = performance.now();
try {
  const template = await preparePgliteTemplate(async (dataDir) => {
    const db = await PGlite.create({ dataDir });
    await db.close();
  });
  process.stdout.write(
    `embedded PostgreSQL template ready in ${Math.round(performance.now() - started)} ms: ${template}\n`,
  );
} catch (error) {
  process.stdout.write(
    `embedded PostgreSQL template not made (the first npm start will run initdb): ${error instanceof Error ? error.message : String(error)}\n`,
  );
}
