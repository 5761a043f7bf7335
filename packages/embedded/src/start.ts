#!/usr/bin/env node
/**
 * `npm start`'s entry: runs the embedded default from its bundle (bundle.ts) when that was built
 * from the sources present now. After a source changed, it bundles again first (under a second
 * with esbuild); without esbuild, or when bundling fails, the sources run, never a stale bundle.
 * `PACKRUN_EMBEDDED_BUNDLE=0` always runs the sources.
 */
import { pathToFileURL } from "node:url";
import { buildEmbeddedBundle, currentBundle, embeddedEntry } from "./bundle.ts";

async function entry(): Promise<string> {
  if (process.env.PACKRUN_EMBEDDED_BUNDLE === "0") return embeddedEntry;
  const bundle = currentBundle();
  if (bundle !== undefined) return bundle;
  process.stdout.write("packrun: bundling the embedded default (its sources changed)\n");
  // A failed build (a syntax error in a source) shows its error again from the sources.
  return (await buildEmbeddedBundle().catch(() => undefined)) ?? embeddedEntry;
}

await import(pathToFileURL(await entry()).href);
