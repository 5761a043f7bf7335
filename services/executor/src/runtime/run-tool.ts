import { tmpdir } from "node:os";
import type { Readable } from "node:stream";
import { type LaunchedProcess, launch } from "./launcher.ts";

/** Result of running an OS tool to completion. */
export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The spawn failed or the tool was killed for overrunning `timeoutMs`. */
  error: string | null;
}

/** Settings of one tool run. */
export interface ToolOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Most output kept per stream; a tool printing more is killed (as execFile's maxBuffer did). */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Runs a tool with an argv (no shell) and captures its output. Never throws: failures are in
 * the result, because callers turn them into step reasons or probe details. The tool is forked
 * by the spawn helper (launcher.ts), not by the worker.
 */
export async function runTool(
  command: string,
  args: readonly string[],
  options: ToolOptions = {},
): Promise<ToolResult> {
  let child: LaunchedProcess;
  try {
    child = await launch(command, args, {
      env: definedEnv(options.env ?? process.env),
      // Tools such as podman/conmon may drop files into their working directory.
      cwd: tmpdir(),
      stdio: ["ignore", "read", "read"],
    });
  } catch (error) {
    return { code: null, stdout: "", stderr: "", error: (error as Error).message };
  }
  return new Promise((resolve) => {
    const output = { stdout: "", stderr: "" };
    let failure: string | null = null;
    const stop = (reason: string): void => {
      failure ??= reason;
      child.kill("SIGKILL");
    };
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => stop(`${command} timed out after ${timeoutMs} ms`), timeoutMs);
    for (const [fd, key] of [
      [1, "stdout"],
      [2, "stderr"],
    ] as const) {
      const stream = child.stdio[fd] as Readable;
      stream.setEncoding("utf8");
      stream.on("error", () => {});
      stream.on("data", (chunk: string) => {
        output[key] += chunk;
        if (output[key].length > MAX_OUTPUT_BYTES) stop(`${command}: ${key} maxBuffer exceeded`);
      });
    }
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      const error = failure ?? (signal === null ? null : `${command} killed by ${signal}`);
      resolve({ code: failure === null ? code : null, ...output, error });
    });
  });
}

/** The environment without unset entries (NodeJS.ProcessEnv allows undefined values). */
function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const defined: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) defined[name] = value;
  return defined;
}

/** The last non-empty line of a tool's stderr (its error message), for reasons and details. */
export function lastLine(text: string): string {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  return lines.at(-1)?.trim() ?? "";
}
