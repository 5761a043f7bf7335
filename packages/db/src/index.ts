export {
  type ChannelListener,
  type ChannelWatcher,
  createDatabaseChannelListener,
  createPostgresChannelListener,
  type KeyListener,
  type ListeningDatabase,
  type PostgresChannelListenerOptions,
} from "./channel-listener.ts";
export { isConnectionError } from "./connection-errors.ts";
export {
  createPostgresDatabase,
  type Database,
  type PostgresDatabaseOptions,
  type Queryable,
  type QueryResult,
  type Transaction,
} from "./database.ts";
export { type Migration, migrate, readMigrations } from "./migrate.ts";
export {
  createPgliteDatabase,
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
  openEmbeddedPostgres,
  type PgliteDatabase,
  type PgliteDatabaseOptions,
  stallWarningMs,
} from "./pglite-database.ts";
