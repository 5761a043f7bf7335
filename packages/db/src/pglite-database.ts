import { mkdir } from "node:fs/promises";
import { PGlite, types } from "@electric-sql/pglite";
import type { Database, QueryResult, Transaction } from "./database.ts";

/** Options for {@link createPgliteDatabase}. */
export interface PgliteDatabaseOptions {
  /** Directory the embedded database persists to; in memory when absent. */
  dataDir?: string;
  /** The service's own schema, first on the search_path (see PostgresDatabaseOptions). */
  schema?: string;
}

/** A PGlite-backed database that can also LISTEN (the embedded default has no other server). */
export interface PgliteDatabase extends Database {
  /** Calls `handler` with each NOTIFY payload on `channel`; resolves to the unsubscribe function. */
  listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
}

/**
 * A {@link Database} on PGlite: real Postgres compiled to WebAssembly, in this process, for the
 * embedded default. Same SQL, same migrations, same semantics; one session, so transactions of
 * concurrent callers run one after another.
 */
export async function createPgliteDatabase(
  options: PgliteDatabaseOptions = {},
): Promise<PgliteDatabase> {
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  const db = await PGlite.create({
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    // int8 as a number, as the pg adapter does (counts and sizes fit in a double).
    parsers: { [types.INT8]: (value: string) => Number(value) },
  });
  if (options.schema !== undefined) {
    await db.exec(
      `CREATE SCHEMA IF NOT EXISTS ${options.schema}; SET search_path TO ${options.schema}, public;`,
    );
  }
  const run = async <Row>(
    target: Pick<PGlite, "query" | "exec">,
    text: string,
    params?: unknown[],
  ): Promise<QueryResult<Row>> => {
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
  };
  return {
    query: (text, params) => run(db, text, params),
    transaction: (work) =>
      db.transaction(async (tx) => {
        const tasks: (() => Promise<void>)[] = [];
        const result = await work({
          query: (text, params) => run(tx, text, params),
          beforeCommit: (task) => tasks.push(task),
        } satisfies Transaction);
        for (const task of tasks) await task();
        return result;
      }),
    close: () => db.close(),
    listen: (channel, handler) => db.listen(channel, handler),
  };
}
