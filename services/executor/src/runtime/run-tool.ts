import { execFile } from "node:child_process";
import { tmpdir } from "node:os";

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

/**
 * Runs a tool with an argv (no shell) and captures its output. Never throws: failures are in
 * the result, because callers turn them into step reasons or probe details.
 */
export function runTool(
  command: string,
  args: readonly string[],
  options: ToolOptions = {},
): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      [...args],
      {
        timeout: options.timeoutMs ?? 60_000,
        killSignal: "SIGKILL",
        maxBuffer: 16 * 1024 * 1024,
        env: options.env ?? process.env,
        // Tools such as podman/conmon may drop files into their working directory.
        cwd: tmpdir(),
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        const failed = error && typeof error.code !== "number" ? error.message : null;
        resolve({ code, stdout, stderr, error: failed });
      },
    );
  });
}

/** The last non-empty line of a tool's stderr (its error message), for reasons and details. */
export function lastLine(text: string): string {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  return lines.at(-1)?.trim() ?? "";
}
