import {
  type ChannelListener,
  createDatabaseChannelListener,
  createPostgresDatabase,
  type Database,
  openEmbeddedPostgres,
} from "@packrun/db";
import { channelEventNotifier, type EventNotifier, eventsChannel } from "@packrun/evidence";
import { executorChannels } from "@packrun/executor";
import type { Logger } from "@packrun/logging";
import { embeddedDataDir, refuseLegacyDataDirs } from "./data-layout.ts";

/** Each service's database, and how it hears its own notifications. */
export interface ServiceDatabases {
  planner: Database;
  executor: Database;
  evidence: Database;
  /** Embedded: notifications heard in process; a server: each service LISTENs on its own. */
  live: {
    evidence: { notifier: EventNotifier } | { databaseUrl: string };
    executor: { listener: ChannelListener } | { databaseUrl: string };
  };
  /** Stops listening and closes the databases (after the services stopped). */
  close(): Promise<void>;
}

/**
 * The services' databases: schemas `planner`, `executor` and `evidence` of the PostgreSQL at
 * `databaseUrl`, or of one embedded PostgreSQL (PGlite) in `home/data/postgres`, as the services
 * share a server in production. Refuses the data directories of older versions.
 */
export async function openServiceDatabases(
  home: string,
  databaseUrl: string | undefined,
  logger: Logger,
): Promise<ServiceDatabases> {
  if (databaseUrl !== undefined) {
    const database = (schema: string) =>
      createPostgresDatabase({ url: databaseUrl, schema, applicationName: `packrun-${schema}` });
    const planner = database("planner");
    const executor = database("executor");
    const evidence = database("evidence");
    return {
      planner,
      executor,
      evidence,
      live: { evidence: { databaseUrl }, executor: { databaseUrl } },
      close: async () => {
        await Promise.all([planner.close(), executor.close(), evidence.close()]);
      },
    };
  }
  await refuseLegacyDataDirs(home);
  const postgres = await openEmbeddedPostgres({
    dataDir: embeddedDataDir(home),
    logger: logger.child({ component: "embedded-postgres" }),
  });
  const planner = await postgres.database("planner");
  const executor = await postgres.database("executor");
  const evidence = await postgres.database("evidence");
  // PGlite has no server other connections could LISTEN on: the services hear the database's
  // notifications in process (channel names are per service).
  const events = await createDatabaseChannelListener(evidence, [eventsChannel]);
  const changes = await createDatabaseChannelListener(executor, executorChannels);
  const notifier = channelEventNotifier(events);
  return {
    planner,
    executor,
    evidence,
    live: { evidence: { notifier }, executor: { listener: changes } },
    async close() {
      await changes.close();
      await notifier.close();
      await postgres.close();
    },
  };
}
