import { resolve } from "node:path";

/** The console's sources: index.html, src/, tsconfig.json. */
export const consoleSourceDir = resolve(import.meta.dirname, "../web");
/** Where the build writes the app the gateway serves at `/`. */
export const consoleAssetsDir = resolve(import.meta.dirname, "../dist");
