import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

/** The real executable, run the way users run it. */
export const binPath = path.join(import.meta.dirname, "..", "bin.ts");

/** What one CLI invocation produced. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Test helper: runs `packrun <args>` in a child process with the current Node binary, in
 * `cwd`, and collects its exit code and output. PACKRUN_DEBUG is cleared unless `env` sets it,
 * so a developer's shell does not change what the tests see.
 */
export function runCli(
  args: readonly string[],
  options: { cwd: string; env?: Readonly<Record<string, string>> },
): Promise<CliRun> {
  const env = { ...process.env, ...options.env };
  if (options.env?.PACKRUN_DEBUG === undefined) delete env.PACKRUN_DEBUG;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, ...args], {
      cwd: options.cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A temp directory holding `files` (name → content), removed again by the returned dispose. */
export async function tempDirWith(
  files: Readonly<Record<string, string>>,
): Promise<{ dir: string; [Symbol.asyncDispose]: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "packrun-cli-"));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(path.join(dir, name), content);
  }
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}
