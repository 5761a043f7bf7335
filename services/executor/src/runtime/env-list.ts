/** The non-empty, trimmed entries of a comma-separated environment variable ([] when unset). */
export function envList(env: NodeJS.ProcessEnv, name: string): string[] {
  return (env[name] ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
}
