#!/usr/bin/env node
/**
 * `npm install` (root postinstall): bundles the embedded default for fast starts (bundle.ts).
 * Without esbuild (installed without development dependencies) it says so and `npm start` runs
 * the sources.
 */
import { buildEmbeddedBundle } from "./bundle.ts";

const started = performance.now();
const bundle = await buildEmbeddedBundle();
process.stdout.write(
  bundle === undefined
    ? "packrun: esbuild is not installed; npm start runs the sources (slower start)\n"
    : `packrun: bundled the embedded default in ${Math.round(performance.now() - started)} ms\n`,
);
