import { createPostgresDatabase, type Database, migrate } from "@packrun/db";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll } from "vitest";
import { executorMigrationsDir, executorSchema } from "../rpc/executor-server.ts";

/** The executor's database of {@link useExecutorDatabase}, readable once `beforeAll` ran. */
export interface ExecutorDatabaseHandle {
  readonly database: Database;
}

/**
 * Registers Vitest hooks in the calling file: a fresh PostgreSQL database with the executor's
 * schema migrated, for tests of the store's statements without a running executor; closed and
 * dropped after the file.
 * @param prefix a readable part of the database name
 */
export function useExecutorDatabase(prefix: string): ExecutorDatabaseHandle {
  let testDatabase: TestDatabase | undefined;
  let database: Database | undefined;
  beforeAll(async () => {
    testDatabase = await createTestDatabase(prefix);
    database = createPostgresDatabase({ url: testDatabase.url, schema: executorSchema });
    await migrate(database, executorSchema, executorMigrationsDir);
  });
  afterAll(async () => {
    await database?.close();
    await testDatabase?.drop();
  });
  return {
    get database() {
      if (database === undefined)
        throw new Error("useExecutorDatabase(): the database exists once the `beforeAll` hook ran");
      return database;
    },
  };
}
