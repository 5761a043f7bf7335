import pg from "pg";

/** Result of a query: rows as plain objects. */
export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number;
}

/** Anything that runs SQL: a pool, or a connection inside a transaction. */
export interface Queryable {
  query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<QueryResult<Row>>;
}

/**
 * A service's handle on its database. Services depend on this interface, not on `pg`, so the
 * embedded default can serve the same SQL from PGlite.
 */
export interface Database extends Queryable {
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// int8 and numeric come back as strings by default; counts and sizes here fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** Options for {@link createPostgresDatabase}. */
export interface PostgresDatabaseOptions {
  url: string;
  /** Maximum pooled connections; default 10. */
  maxConnections?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
  /**
   * The service's own schema, first on every connection's search_path so its SQL names its
   * tables unqualified.
   */
  schema?: string;
}

/** A {@link Database} backed by a `pg` connection pool. */
export function createPostgresDatabase(options: PostgresDatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    application_name: options.applicationName ?? "packrun",
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema},public` }),
  });
  // An idle client losing its connection (e.g. a Postgres restart) must not crash the process;
  // the pool discards it and the next query reconnects.
  pool.on("error", () => {});
  const run = async <Row>(client: pg.Pool | pg.PoolClient, text: string, params?: unknown[]) => {
    const result = await client.query(text, params);
    return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
  };
  return {
    query: (text, params) => run(pool, text, params),
    async transaction(work) {
      const client = await pool.connect();
      // Checked out, the client is no longer covered by the pool's idle error listener: a
      // connection lost between the transaction's queries would be an unhandled 'error' event.
      const onError = () => {};
      client.on("error", onError);
      try {
        await client.query("BEGIN");
        const result = await work({ query: (text, params) => run(client, text, params) });
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.off("error", onError);
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
