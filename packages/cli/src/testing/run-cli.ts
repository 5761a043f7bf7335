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

let inProcessCalls: Promise<unknown> = Promise.resolve();

/**
 * Test helper: runs `packrun <args>` through the CLI's `main()` in this process (same argv,
 * environment, working directory and exit code as {@link runCli}, output captured from
 * process.stdout/stderr), so that coverage sees the commands. Calls are serialised: each one
 * owns the process's environment, directory and standard streams while it runs.
 */
export function runCliInProcess(
  args: readonly string[],
  options: { cwd: string; env?: Readonly<Record<string, string>> },
): Promise<CliRun> {
  const call = inProcessCalls.then(async (): Promise<CliRun> => {
    const { main } = await import("../main.ts");
    const savedEnv = { ...process.env };
    const savedCwd = process.cwd();
    const writes = { stdout: "", stderr: "" };
    const realOut = process.stdout.write;
    const realErr = process.stderr.write;
    const capture =
      (stream: "stdout" | "stderr") =>
      (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
        writes[stream] += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
        const done = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
        done?.();
        return true;
      };
    try {
      Object.assign(process.env, options.env);
      if (options.env?.PACKRUN_DEBUG === undefined) delete process.env.PACKRUN_DEBUG;
      process.chdir(options.cwd);
      process.stdout.write = capture("stdout") as typeof process.stdout.write;
      process.stderr.write = capture("stderr") as typeof process.stderr.write;
      const code = await main(["node", "packrun", ...args]);
      return { code, stdout: writes.stdout, stderr: writes.stderr };
    } finally {
      process.stdout.write = realOut;
      process.stderr.write = realErr;
      process.chdir(savedCwd);
      for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
      Object.assign(process.env, savedEnv);
    }
  });
  inProcessCalls = call.catch(() => {});
  return call;
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
