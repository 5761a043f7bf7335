import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { readTestEnv } from "./test-env.ts";
import { uniqueName } from "./unique-name.ts";

/** A fresh, empty database on the harness's PostgreSQL server. */
export interface TestDatabase {
  /** Connection URL (superuser) of this database. */
  readonly url: string;
  /** The database name. */
  readonly name: string;
  /** Terminates every connection to the database and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: readTestEnv().databaseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates a uniquely named database (`CREATE DATABASE`) for one test file or test.
 * @param prefix a readable part of the name, e.g. the service under test
 */
export async function createTestDatabase(prefix = "test"): Promise<TestDatabase> {
  const name = uniqueName(prefix);
  await withAdmin((admin) => admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  const url = new URL(readTestEnv().databaseUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      // WITH (FORCE) terminates the database's connections before dropping it.
      await withAdmin((admin) =>
        admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}

/** The database of {@link useTestDatabase}; its fields are readable once the `before` hook ran. */
export interface TestDatabaseHandle {
  /** Connection URL; throws if read before the `before` hook ran. */
  readonly url: string;
  /** Database name; throws if read before the `before` hook ran. */
  readonly name: string;
}

/**
 * Registers Vitest hooks (`beforeAll`/`afterAll`) in the calling file (or suite): a fresh database is created in `before`
 * and dropped in `after`.
 *
 * Top-level `before` hooks of one file may run concurrently: a hook that needs the database must
 * be registered inside a `describe` after this call (hooks of a suite run in order), or call
 * {@link createTestDatabase} itself.
 *
 * ```ts
 * const db = useTestDatabase("planner");
 * test("…", async () => { const client = new pg.Client(db.url); … });
 * ```
 * @param prefix a readable part of the database name
 */
export function useTestDatabase(prefix?: string): TestDatabaseHandle {
  let database: TestDatabase | undefined;
  const current = (): TestDatabase => {
    if (!database)
      throw new Error("useTestDatabase(): the database exists only once the `before` hook ran");
    return database;
  };
  beforeAll(async () => {
    database = await createTestDatabase(prefix);
  });
  afterAll(async () => {
    await database?.drop();
  });
  return {
    get url() {
      return current().url;
    },
    get name() {
      return current().name;
    },
  };
}
