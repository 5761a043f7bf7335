import { ExitCode } from "./exit-codes.ts";

const reasons: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "a parent of the path is not a directory",
  EISDIR: "is a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "file name too long",
};

/** Codes that mean the path the user gave is wrong, so fixing the call fixes the problem. */
const callerMistakes = new Set([
  "ENOENT",
  "ENOTDIR",
  "EISDIR",
  "EACCES",
  "EPERM",
  "EROFS",
  "ELOOP",
  "ENAMETOOLONG",
]);

function errnoCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** A short human reason for a file-system error, without the path Node puts in its message. */
export function describeFsError(error: unknown): string {
  const code = errnoCode(error);
  if (code !== undefined) return reasons[code] ?? code;
  return error instanceof Error ? error.message : String(error);
}

/** 2 when the path given is at fault (missing, a directory, not permitted), else 1. */
export function fsErrorExitCode(error: unknown): number {
  const code = errnoCode(error);
  return code !== undefined && callerMistakes.has(code) ? ExitCode.invalidInput : ExitCode.error;
}
