import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";

/**
 * True when `command` (argv[0]) names a program the step could start: a path (with a `/`)
 * resolved against `cwd`, or a name found in one of `searchPath`'s directories, as an existing
 * executable file. Only "not found" is trusted: a program found here may still fail to start
 * in a sandbox that shows less of the filesystem, which the step's exit reports.
 */
export async function isRunnable(
  command: string,
  searchPath: string,
  cwd: string,
): Promise<boolean> {
  const candidates = command.includes("/")
    ? [path.resolve(cwd, command)]
    : searchPath
        .split(":")
        .filter((dir) => dir !== "")
        .map((dir) => path.resolve(cwd, dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return true;
    } catch {
      // Not here; try the next directory.
    }
  }
  return false;
}

// What shells and the wrappers a step runs under (GNU time, prlimit, bubblewrap) print when
// they cannot find or start a program; each captures the program's name.
const notFoundPatterns: readonly RegExp[] = [
  /^(?:\S*sh): (?:\d+: |line \d+: )?(.+?): (?:command )?not found$/, // dash, bash
  /^(?:\S+: )?cannot run (.+?): No such file or directory$/, // GNU time
  /^(?:\S+: )?failed to execute (.+?): No such file or directory$/, // prlimit
  /^(?:\S+: )?execvp (.+?): No such file or directory$/, // bubblewrap
  /^(?:\S*sh): (?:\d+: |line \d+: )?(.+?): No such file or directory$/, // bash: a missing path
];

/**
 * The program a step's last stderr lines say could not be found, if any: how a step that
 * exited with 127 (the shells' and wrappers' "command not found") gets a reason in plain words
 * instead of an exit code.
 */
export function missingCommandIn(stderrLines: readonly string[]): string | undefined {
  for (const line of [...stderrLines].reverse()) {
    for (const pattern of notFoundPatterns) {
      const found = pattern.exec(line.trim())?.[1];
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
