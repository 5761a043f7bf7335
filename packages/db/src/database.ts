import { createHash } from "node:crypto";
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

/** A connection inside a transaction. */
export interface Transaction extends Queryable {
  /**
   * Runs `task` just before COMMIT, inside the transaction (tasks run in the order they were
   * registered). Lets a caller batch writes it collected during the transaction, such as
   * events, into one statement without every code path having to remember to write them.
   */
  beforeCommit(task: () => Promise<void>): void;
}

/**
 * A service's handle on its database. Services depend on this interface, not on `pg`, so the
 * embedded default can serve the same SQL from PGlite.
 */
export interface Database extends Queryable {
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * True when every service shares one session (the embedded PGlite): transactions run one at a
   * time, so one must not stay open while its caller waits for another service, whose statements
   * would queue behind it for ever.
   */
  readonly singleSession?: boolean;
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

/**
 * Most distinct statement texts prepared per process; statements beyond it run unnamed. The
 * executor's SQL is a fixed set of a few dozen texts; the cap protects the server's memory
 * should some caller ever build texts dynamically.
 */
const maxPreparedStatements = 1_000;

/**
 * Names for parameterised statements, so each pooled connection parses and plans a statement
 * once and then only binds and executes it: most of packrun's statements are short, and their
 * parse and plan cost as much server CPU as their execution. A statement the server can no
 * longer use as prepared (its tables changed shape under a running process, e.g. a rolling
 * upgrade's migration) runs unnamed from then on.
 */
function createStatementNamer() {
  const names = new Map<string, string>();
  const unprepared = new Set<string>();
  return {
    nameOf(text: string, params: unknown[] | undefined): string | undefined {
      // Unparameterised texts may hold several statements (migrations), which cannot be prepared.
      if (params === undefined || params.length === 0 || unprepared.has(text)) return undefined;
      let name = names.get(text);
      if (name === undefined) {
        if (names.size >= maxPreparedStatements) return undefined;
        name = `packrun_${createHash("sha256").update(text).digest("base64url").slice(0, 22)}`;
        names.set(text, name);
      }
      return name;
    },
    /** True when `error` says the prepared form of `text` is unusable now; stops preparing it. */
    stale(text: string, error: unknown): boolean {
      const code = (error as { code?: unknown } | null)?.code;
      // 0A000: "cached plan must not change result type"; 26000: prepared statement gone.
      if (code !== "0A000" && code !== "26000") return false;
      unprepared.add(text);
      return true;
    },
  };
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
  const statements = createStatementNamer();
  const run = async <Row>(
    client: pg.Pool | pg.PoolClient,
    text: string,
    params?: unknown[],
    inTransaction = false,
  ) => {
    const name = statements.nameOf(text, params);
    let result: pg.QueryResult;
    try {
      result =
        name === undefined
          ? await client.query(text, params)
          : await client.query({ name, text, values: params ?? [] });
    } catch (error) {
      // Retried unnamed only outside a transaction: inside one, the error aborted it already.
      if (name === undefined || !statements.stale(text, error) || inTransaction) throw error;
      result = await client.query(text, params);
    }
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
        const tasks: (() => Promise<void>)[] = [];
        const result = await work({
          query: (text, params) => run(client, text, params, true),
          beforeCommit: (task) => tasks.push(task),
        });
        for (const task of tasks) await task();
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
