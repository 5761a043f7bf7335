import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { PGlite, types } from "@electric-sql/pglite";
import type { Logger } from "@packrun/logging";
import type { Database, QueryResult, Transaction } from "./database.ts";
import { seedFromTemplate } from "./pglite-template.ts";

/** Options for {@link openEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Directory the embedded database persists to; in memory when absent. */
  dataDir?: string;
  /**
   * Initial size of the database's WebAssembly memory in bytes (it grows on demand); PGlite's
   * default is 128 MiB. Only pages Postgres touches become resident.
   */
  initialMemory?: number;
  /**
   * Told when one turn holds the session longer than `stallWarningMs` while others wait:
   * the sign of a transaction kept open across a call to another service (see
   * `Database.singleSession`), which would otherwise hang without a word.
   */
  logger?: Logger;
  /** How long one turn may hold the session, with others waiting, before the logger hears of it. */
  stallWarningMs?: number;
}

/** Postgres's cache of table and index pages in the embedded database. */
const sharedBuffers = "8MB";

/** Default of `EmbeddedPostgresOptions.stallWarningMs`. */
export const stallWarningMs = 5_000;

/** Options for {@link createPgliteDatabase}. */
export interface PgliteDatabaseOptions extends EmbeddedPostgresOptions {
  /** The service's own schema, first on the search_path (see PostgresDatabaseOptions). */
  schema?: string;
}

/** A PGlite-backed database that can also LISTEN (the embedded default has no other server). */
export interface PgliteDatabase extends Database {
  /** Calls `handler` with each NOTIFY payload on `channel`; resolves to the unsubscribe function. */
  listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
}

/**
 * One embedded PostgreSQL shared by several services, each in its own schema, as in production
 * where they share a server. PGlite is one session: the handles take turns on it, a whole
 * transaction at a time.
 */
export interface EmbeddedPostgres {
  /** A handle whose SQL runs with `schema` first on the search_path (created if missing). */
  database(schema: string): Promise<PgliteDatabase>;
  /** Closes the database; every handle stops working. */
  close(): Promise<void>;
}

const schemaName = /^[a-z_][a-z0-9_]*$/;

/**
 * Opens PGlite (real Postgres compiled to WebAssembly, in this process) for the embedded default.
 * Same SQL, same migrations, same semantics as a server, with one difference callers must
 * respect: there is one session, so a transaction that stays open while its caller waits for
 * another service (a call over gRPC that reaches this database) never ends. Handles say so in
 * `Database.singleSession`; the logger hears of a turn that holds the session too long.
 */
export async function openEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  if (options.dataDir !== undefined) {
    await mkdir(dirname(options.dataDir), { recursive: true });
    // A new database starts as a copy of the template initdb made at install, if there is one.
    if (!(await seedFromTemplate(options.dataDir)))
      await mkdir(options.dataDir, { recursive: true });
  }
  const db = await PGlite.create({
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.initialMemory === undefined ? {} : { initialMemory: options.initialMemory }),
    // Postgres touches all its shared buffers when it starts: at the default 128 MB they are
    // most of the process's resident memory. A cache, not durability: 8 MB holds the embedded
    // default's working set (pages are read from the files beyond it); a warm `npm start` peaks
    // about 20 MiB lower than with 16 MB, and 4 MB saved no more (docs/benchmarks.md).
    startParams: [...PGlite.defaultStartParams, "-c", `shared_buffers=${sharedBuffers}`],
    // int8 as a number, as the pg adapter does (counts and sizes fit in a double).
    parsers: { [types.INT8]: (value: string) => Number(value) },
  });
  // The schema on the session's search_path now; a SET runs only when another service's turn
  // comes, outside any transaction, so a rollback cannot undo it behind our back.
  let searchPath = "public";
  let queue: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  const stallMs = options.stallWarningMs ?? stallWarningMs;
  /** Runs `work` alone on the session, after every turn asked for before it. */
  const turn = <T>(schema: string, work: () => Promise<T>): Promise<T> => {
    waiting++;
    const result = queue.then(async () => {
      waiting--;
      const stall = setTimeout(() => {
        if (waiting > 0)
          options.logger?.warn(
            { schema, heldMs: stallMs, waiting },
            "one turn holds the embedded database's only session while others wait; is a transaction open across a call to another service?",
          );
      }, stallMs);
      stall.unref();
      try {
        if (searchPath !== schema) {
          await db.exec(`SET search_path TO ${schema}, public`);
          searchPath = schema;
        }
        return await work();
      } finally {
        clearTimeout(stall);
      }
    });
    queue = result.catch(() => {});
    return result;
  };
  return {
    async database(schema) {
      if (!schemaName.test(schema)) throw new Error(`bad schema name ${schema}`);
      await turn(schema, () => db.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}`));
      return schemaDatabase(db, schema, turn);
    },
    close: () => db.close(),
  };
}

/** The handle of one schema on the shared session. */
function schemaDatabase(
  db: PGlite,
  schema: string,
  turn: <T>(schema: string, work: () => Promise<T>) => Promise<T>,
): PgliteDatabase {
  return {
    singleSession: true,
    query: (text, params) => turn(schema, () => run(db, text, params)),
    transaction: (work) =>
      turn(schema, () =>
        db.transaction(async (tx) => {
          const tasks: (() => Promise<void>)[] = [];
          const result = await work({
            query: (text, params) => run(tx, text, params),
            beforeCommit: (task) => tasks.push(task),
          } satisfies Transaction);
          for (const task of tasks) await task();
          return result;
        }),
      ),
    // The instance belongs to whoever opened it (EmbeddedPostgres.close).
    close: async () => {},
    // Notifications are database-wide: channel names carry their service's prefix.
    listen: (channel, handler) => db.listen(channel, handler),
  };
}

/** One statement (or, unparameterised, a script) on the session or a transaction. */
async function run<Row>(
  target: Pick<PGlite, "query" | "exec">,
  text: string,
  params?: unknown[],
): Promise<QueryResult<Row>> {
  if (params === undefined || params.length === 0) {
    // The simple protocol accepts several statements (migrations); the last result counts.
    const results = await target.exec(text);
    const last = results.at(-1);
    return {
      rows: (last?.rows ?? []) as Row[],
      rowCount: last?.affectedRows ?? last?.rows.length ?? 0,
    };
  }
  const result = await target.query<Row>(text, params);
  return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
}

/**
 * A {@link Database} on its own PGlite instance (tests, tools): {@link openEmbeddedPostgres} with
 * one schema (`public` when none is given); closing it closes the instance.
 */
export async function createPgliteDatabase(
  options: PgliteDatabaseOptions = {},
): Promise<PgliteDatabase> {
  const { schema, ...instance } = options;
  const postgres = await openEmbeddedPostgres(instance);
  const database = await postgres.database(schema ?? "public");
  return { ...database, close: () => postgres.close() };
}
