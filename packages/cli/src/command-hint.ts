import { realpathSync } from "node:fs";
import path from "node:path";

/**
 * How to start packrun again the way the user did, so the commands the CLI suggests (follow a
 * run, approve a gate, see a step's logs, fetch the next page) work when pasted as printed:
 *
 * - through `npm run packrun -- …` (the repository's script): `npm run -s packrun --`; `-s`
 *   also keeps npm from echoing the command line, run ids masked as `***` included;
 * - through the `packrun` executable (bin/packrun.js): `packrun` when that is what `packrun`
 *   on PATH runs, else the path it was started by (`node_modules/.bin/packrun`), relative to
 *   the current directory;
 * - anything else (tests, embedders): `packrun`.
 */
export function commandPrefix(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (env.npm_lifecycle_event === "packrun") return "npm run -s packrun --";
  const invoked = env.PACKRUN_INVOKED_AS;
  if (invoked === undefined || invoked === "" || invoked === "packrun") return "packrun";
  if (sameFile(onPath("packrun", env.PATH ?? ""), invoked)) return "packrun";
  const relative = path.relative(cwd, invoked);
  return relative.startsWith("..") || path.isAbsolute(relative)
    ? invoked
    : relative.includes("/")
      ? relative
      : `./${relative}`;
}

/** `args` as a command to run: `npm run -s packrun -- logs 3f2c… -f`, `packrun logs …`. */
export function commandHint(args: string): string {
  return `${commandPrefix()} ${args}`;
}

function onPath(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(path.delimiter).filter((entry) => entry !== "")) {
    const candidate = path.join(dir, name);
    if (realpathOrUndefined(candidate) !== undefined) return candidate;
  }
  return undefined;
}

function sameFile(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const real = realpathOrUndefined(a);
  return real !== undefined && real === realpathOrUndefined(b);
}

function realpathOrUndefined(file: string): string | undefined {
  try {
    return realpathSync(file);
  } catch {
    return undefined;
  }
}
