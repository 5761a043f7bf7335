#!/usr/bin/env node
/**
 * `npm install` (root postinstall): bundles the embedded default for fast starts (bundle.ts).
 * Skipped when the bundle is current (`--force` bundles anyway). Without esbuild (installed
 * without development dependencies) it says so and `npm start` runs the sources.
 */
import { buildEmbeddedBundle, currentBundle } from "./bundle.ts";

const started = performance.now();
const current = process.argv.includes("--force") ? undefined : currentBundle();
if (current !== undefined) {
  process.stdout.write("packrun: the embedded default's bundle is up to date\n");
  process.exit(0);
}
const bundle = await buildEmbeddedBundle();
process.stdout.write(
  bundle === undefined
    ? "packrun: esbuild is not installed; npm start runs the sources (slower start)\n"
    : `packrun: bundled the embedded default in ${Math.round(performance.now() - started)} ms\n`,
);
