export {
  createPostgresDatabase,
  type Database,
  type PostgresDatabaseOptions,
  type Queryable,
  type QueryResult,
} from "./database.ts";
export { type Migration, migrate, readMigrations } from "./migrate.ts";
export {
  createPgliteDatabase,
  type PgliteDatabase,
  type PgliteDatabaseOptions,
} from "./pglite-database.ts";
