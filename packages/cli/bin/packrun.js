#!/usr/bin/env node
/**
 * The `packrun` executable (`node_modules/.bin/packrun`). The CLI is TypeScript run by Node's
 * type stripping, which the Node this repository pins (the `node` dev dependency) has and a
 * machine's older Node lacks ("Unknown file extension .ts"). This plain-JavaScript shim, which
 * any Node runs, starts src/bin.ts with the pinned Node and passes its exit status on.
 */
import { spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = dirname(dirname(realpathSync(fileURLToPath(import.meta.url))));
const entry = join(packageDir, "src", "bin.ts");

/** node_modules/.bin/node nearest above the package: the pinned Node; else this one. */
function pinnedNode() {
  for (let dir = packageDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", ".bin", "node");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return process.execPath;
  }
}

const child = spawn(pinnedNode(), [entry, ...process.argv.slice(2)], {
  stdio: "inherit",
  // How the user started packrun, so the commands it suggests are ones that work as printed.
  env: { ...process.env, PACKRUN_INVOKED_AS: process.argv[1] ?? "packrun" },
});
// Ctrl-C reaches the child from the terminal itself; only signals sent to this process are
// passed on. Either way this process waits for the child's exit.
process.on("SIGINT", () => {});
for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("error", (error) => {
  process.stderr.write(`packrun: cannot start ${entry}: ${error.message}\n`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  if (signal === null) process.exit(code ?? 1);
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
});
