/**
 * What the gateway needs of the web console at run time: where the built app is. The build
 * itself (Vite, a development dependency) is `@packrun/console/build`.
 */
export { consoleAssetsDir, consoleSourceDir } from "./assets-dir.ts";
