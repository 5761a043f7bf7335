import { stat } from "node:fs/promises";
import { join } from "node:path";
import { PackrunError } from "@packrun/errors";

/** The services that each had their own embedded database before they shared one. */
const legacyDatabases = ["planner", "executor", "evidence"] as const;

/** Where the embedded PostgreSQL keeps its data: one database, a schema per service. */
export function embeddedDataDir(home: string): string {
  return join(home, "data", "postgres");
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Refuses a home whose data an older packrun wrote, one embedded database per service
 * (`home/data/planner`, `…/executor`, `…/evidence`): this version would start afresh beside them
 * and the user's runs, packs and schedules would seem lost. The message says what to do.
 * @throws PackrunError CONFIG_INVALID naming the directories found
 */
export async function refuseLegacyDataDirs(home: string): Promise<void> {
  const found: string[] = [];
  for (const service of legacyDatabases) {
    const dir = join(home, "data", service);
    if (await isDirectory(dir)) found.push(dir);
  }
  if (found.length === 0) return;
  throw new PackrunError(
    "CONFIG_INVALID",
    `${found.join(", ")}: databases of an older packrun, one per service; this version keeps one database with a schema per service in ${embeddedDataDir(home)} and does not read them. To keep those runs, use the older packrun (or export what you need) before upgrading; to start afresh, move them aside (mv ${join(home, "data")} ${join(home, "data.old")}) or point PACKRUN_HOME at another directory. Nothing was changed.`,
  );
}
