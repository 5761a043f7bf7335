export {
  buildConsole,
  type ConsoleBuild,
  consoleAssetsDir,
  consoleSourceDigest,
  consoleSourceDir,
} from "./build-console.ts";
