import { constants } from "node:fs";
import { access } from "node:fs/promises";
import path from "node:path";

/** Directories searched after the worker's own PATH, so a worker started with a thin PATH still finds OS tools. */
const SYSTEM_DIRS = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"];

const cache = new Map<string, Promise<string | null>>();

/**
 * Absolute path of an executable by name (searching PATH, then the usual system directories),
 * or null when it is not installed. Results are cached for the life of the process.
 */
export function findExecutable(name: string): Promise<string | null> {
  let found = cache.get(name);
  if (!found) {
    found = search(name);
    cache.set(name, found);
  }
  return found;
}

async function search(name: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}
